"""The station's "Pixel size mm" field (mammography): it shows the pixel size of the image loaded in the tab, and a
value the reader types there is the reader's pixel size for the next image read that stores none (a sample case or an
upload). GUI-free: the station passes the field's text and the loaded mammogram."""

from __future__ import annotations

from ..mammo.images import PIXEL_SIZE_GIVEN, PIXEL_SIZE_UNKNOWN


class PixelSizeField:
    """What the field shows (`shown`) and whether that value is the reader's own (`readers`)."""

    def __init__(self) -> None:
        self.shown = ""
        self.readers = False

    def typed(self) -> None:
        """The reader typed in the field (even the value it showed): its value is the reader's."""
        self.readers = True

    def reader_value(self, text) -> str:
        """The reader's pixel size ("" for none) in the field's `text`: a value typed since the last load, or the
        reader's value the field still shows; never a value the field shows as another image's own."""
        text = str(text if text is not None else "").strip()
        return text if text != self.shown or self.readers else ""

    def loaded(self, mammogram, by_reader: bool) -> str:
        """The field's text once `mammogram` is loaded (`by_reader`: the reader's value was given for it; a size its
        file stores wins): its pixel size ("0.07", "0.1 × 0.12") unless unknown, then empty."""
        meta = mammogram.meta if mammogram is not None else {}
        sizes = meta.get("pixel_size_mm") or []
        if meta.get("pixel_size_source", PIXEL_SIZE_UNKNOWN) == PIXEL_SIZE_UNKNOWN or not sizes:
            self.shown, self.readers = "", False
        else:
            texts = list(dict.fromkeys(f"{round(float(size), 4):g}" for size in sizes))
            self.shown = " × ".join(texts)
            self.readers = by_reader and meta["pixel_size_source"] == PIXEL_SIZE_GIVEN
        return self.shown
