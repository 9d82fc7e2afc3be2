"""The one exception image reading raises: its message names the image and what is wrong."""


class ImageError(Exception):
    """An image could not be read or failed verification (digest, size, format)."""
