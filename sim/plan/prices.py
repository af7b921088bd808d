"""$/chip-hour price tables: the shipped catalog/prices.yaml or a user's own file of the same layout."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import Field, ValidationError

from sim.catalog import CATALOG_DIR
from sim.errors import InputError
from sim.strict import StrictModel, validation_error_to_input_error

DEFAULT_PRICES = CATALOG_DIR / "prices.yaml"


class PriceEntry(StrictModel):
    on_demand: float = Field(..., gt=0, description="$/chip-hour, pay as you go.")
    committed: float | None = Field(None, gt=0, description="$/chip-hour under a 1-year commitment.")
    source: str = Field(..., min_length=1, description="Where the price is listed.")
    as_of: str = Field(..., min_length=1, description="When it was listed there.")


class PriceTable(StrictModel):
    currency: Literal["USD"] = "USD"
    prices: dict[str, PriceEntry]

    def price(self, hardware: str, pricing: str) -> tuple[float, str]:
        """($/chip-hour, provenance) of one hardware kind; InputError when the table has no such price."""
        entry = self.prices.get(hardware)
        if entry is None:
            raise InputError(f"no price for hardware '{hardware}' in the price table; add one", "--prices")
        usd = entry.on_demand if pricing == "on_demand" else entry.committed
        if usd is None:
            raise InputError(
                f"no {pricing} price for hardware '{hardware}' in the price table; add one or use on_demand",
                "--pricing",
            )
        return usd, f"list price ({pricing}): {entry.source}, {entry.as_of}"


def load_prices(path: str | Path | None = None) -> PriceTable:
    path = Path(path) if path is not None else DEFAULT_PRICES
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}", "--prices") from None
    except yaml.YAMLError as exc:
        raise InputError(f"{path} is not valid YAML: {exc}", "--prices") from None
    try:
        return PriceTable.model_validate(data)
    except ValidationError as err:
        raise InputError(f"{path}: {validation_error_to_input_error(err)}", "--prices") from None
