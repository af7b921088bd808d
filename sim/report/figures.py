"""Finishing a matplotlib figure the same way everywhere: title, layout, PNG at 100 dpi, memory freed."""

from __future__ import annotations

from pathlib import Path


def save_figure(fig, title: str, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
