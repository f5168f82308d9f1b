"""Named dataset sizes: the reference benchmark's three, plus a small demo default."""

from data_prep.common.errors import DataPrepError

# images per named size; 10G/300G/10T are the reference benchmark's counts.
SIZES: dict[str, int] = {
    "mini": 1_024,
    "10G": 16_232,
    "300G": 486_960,
    "10T": 16_232_000,
}
DEFAULT_SIZE = "mini"


def images_for(size: str) -> int:
    try:
        return SIZES[size]
    except KeyError:
        raise DataPrepError(
            f"unknown size {size!r}: choose one of {', '.join(SIZES)} or pass --images N"
        ) from None
