"""Registries of kinds (hardware kinds, runtimes, cost models, routers, autoscaler policies, calibrate
methods) and the schema field type that accepts their keys.

Each kind of thing servesim can be configured with lives in one registry: a dict from the name a scenario
uses to the object that implements it. Adding one is one entry in that dict -- no if-chain elsewhere names
the kinds. A scenario field that picks a kind is typed ``Annotated[str, RegistryKey(...)]``: validation
checks the value against the registry's keys *at validation time* (so an entry added later, by a plugin or
a test, is accepted), and the JSON Schema (``simulate --schema``, docs/scenarios.md) lists the keys as an
enum, generated from the registry when the schema is made.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic_core import core_schema


class RegistryKey:
    """Field type marker: the value must be a key of the registry `load()` returns. `load` is a function so
    that a schema module can name a registry defined in a module that itself imports the schema."""

    def __init__(self, load: Callable[[], Mapping[str, Any]], what: str):
        self.load = load
        self.what = what

    def names(self) -> list[str]:
        return sorted(self.load())

    def check(self, value: str) -> str:
        if value not in self.load():
            raise ValueError(f"unknown {self.what} '{value}'; known: {', '.join(self.names())}")
        return value

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler):
        return core_schema.no_info_after_validator_function(self.check, core_schema.str_schema())

    def __get_pydantic_json_schema__(self, schema: Any, handler: GetJsonSchemaHandler) -> dict[str, Any]:
        return {"type": "string", "enum": self.names()}
