"""What an image file claims, read from its header before any pixel is decoded, and the size limits per modality.

A damaged or hostile header can claim terabytes in a few hundred bytes; a truncated file is read with its missing
slices as zeros. Every image reader of the package therefore calls :func:`check_image_file` (DICOM:
:func:`read_dicom_header` and :func:`check_dicom`) first. It parses the header alone (NRRD, NIfTI-1/2 also gzipped,
MetaImage, DICOM through pydicom, PNG/JPEG/TIFF/PGM through Pillow's lazy open, other formats through ITK's header
reader), refuses a size beyond the limit of the modality, and refuses a file that holds less image data than its
header claims (compressed data are decoded as a stream and counted, never kept).

Limits (1 GB = 1024³ bytes, 1 TB = 1024 GB, of data as stored in the file, before conversion to floating point):

==================  ======================  ==========================  =======
image               pixels per side         slices / frames             data
==================  ======================  ==========================  =======
mammogram           20 000                  1                           1 GB
bone scan           4096                    2 (anterior, posterior)     0.5 GB
MRI volume          1024                    1024                        2 GB
any other image     20 000                  2048                        2 GB
==================  ======================  ==========================  =======
"""

from __future__ import annotations

import bz2
import gzip
import math
import os
import re
import struct
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image

from .errors import InputError

if TYPE_CHECKING:  # pydicom (~0.1 s to import) only when a DICOM file is read
    import pydicom

GB = 1024**3


@dataclass(frozen=True)
class SizeLimit:
    """The largest image accepted for one kind of input; `depth_rule` replaces the generic too-many-slices line."""

    what: str
    max_side: int  # columns and rows
    max_depth: int  # slices, frames or time points (product of the axes beyond the first two)
    max_bytes: int  # decoded data, as stored
    depth_rule: str = ""


MAMMOGRAM = SizeLimit("a mammogram", 20_000, 1, 1 * GB, "a mammogram is a single 2D image")
BONE_SCAN = SizeLimit("a whole-body bone scan", 4096, 2, GB // 2,
                      "a whole-body planar scan has one or two views (anterior, posterior). SPECT or dynamic studies "
                      "are not supported.")
MR_VOLUME = SizeLimit("an MRI volume", 1024, 1024, 2 * GB)
ANY_IMAGE = SizeLimit("an image", 20_000, 2048, 2 * GB)

CONTROL_CHARACTERS = re.compile("[\x00-\x08\x0a-\x1f\x7f]")
HEADER_MAX_BYTES = 1 << 20  # a text header (NRRD, MetaImage) longer than this is damaged
CHUNK = 1 << 20  # decoded bytes held at a time while counting compressed data


@dataclass(frozen=True)
class ImageHeader:
    """What a file claims. `sizes`: columns, rows, then slices / frames / time points; `voxel_bytes`: bytes per
    voxel with all its components. The data start at `data_start` of `data_path` (`None`: not checked), are
    `encoding`-coded ("raw", "gzip", "bzip2", "zlib", "ascii", "hex"), and skip `skip` decoded bytes first."""

    name: str
    sizes: tuple[int, ...]
    voxel_bytes: int
    data_path: Path | None = None
    data_start: int = 0
    encoding: str = "raw"
    skip: int = 0

    @property
    def depth(self) -> int:
        return math.prod(self.sizes[2:])

    @property
    def nbytes(self) -> int:
        return math.prod(self.sizes) * self.voxel_bytes


def _gb(n: int) -> str:
    """A byte count in words (1 GB = 1024³ bytes)."""
    for unit, scale in (("TB", 1024 * GB), ("GB", GB), ("MB", 1024**2)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n / 1024:.1f} kB"


def _damaged(name: str, detail: str) -> InputError:
    return InputError(f"{name} is damaged or not a valid image file ({detail}); export or copy it again")


def check_size(header: ImageHeader, limit: SizeLimit) -> None:
    """Refuse a header whose image is empty or larger than `limit`."""
    sizes = header.sizes[:2] if header.depth == 1 else header.sizes
    dims = "×".join(str(s) for s in sizes) + (" pixels" if header.depth == 1 else " voxels")
    if not header.sizes or min(header.sizes) < 1 or header.voxel_bytes < 1:
        raise _damaged(header.name, f"its header claims an image of {dims}")
    if header.nbytes > limit.max_bytes:
        raise InputError(f"{header.name} claims {_gb(header.nbytes)} of image data ({dims}); the limit for "
                         f"{limit.what} is {_gb(limit.max_bytes)}. Is this the right file? Its header may be damaged.")
    if header.depth > limit.max_depth:
        rule = limit.depth_rule or f"the limit for {limit.what} is {limit.max_depth}"
        raise InputError(f"{header.name} has {header.depth} frames or slices; {rule}")
    if max(header.sizes[:2]) > limit.max_side:
        raise InputError(f"{header.name} claims an image of {dims}; the limit for {limit.what} is "
                         f"{limit.max_side} pixels per side. Is this the right file? Its header may be damaged.")


def _decoder(encoding: str):
    if encoding == "bzip2":
        return bz2.BZ2Decompressor()
    return zlib.decompressobj(zlib.MAX_WBITS | 16 if encoding == "gzip" else zlib.MAX_WBITS)


def _decoded_length(header: ImageHeader, needed: int) -> int:
    """Bytes the compressed data decode to, counted up to `needed` (memory bounded by CHUNK); a gzip or bzip2 stream
    of several members is followed to its end."""
    magic = {"gzip": b"\x1f\x8b", "bzip2": b"BZh"}.get(header.encoding)
    count, pending = 0, b""
    decoder = _decoder(header.encoding)
    with open(header.data_path, "rb") as raw:
        raw.seek(header.data_start)
        try:
            while count < needed:
                if decoder.eof:
                    pending = decoder.unused_data or raw.read(CHUNK)
                    if magic is None or not pending.startswith(magic):
                        break
                    decoder = _decoder(header.encoding)
                if header.encoding == "bzip2" and not decoder.needs_input:
                    data = b""
                else:
                    data = pending or getattr(decoder, "unconsumed_tail", b"") or raw.read(CHUNK)
                    pending = b""
                    if not data:
                        break
                count += len(decoder.decompress(data, CHUNK))
        except (OSError, EOFError, zlib.error) as exc:
            raise _damaged(header.name, f"its {header.encoding} data are corrupt") from exc
    return count


def check_complete(header: ImageHeader) -> None:
    """Refuse a file that holds less image data than its header claims (missing slices would be read as zeros)."""
    if header.data_path is None:
        return
    try:
        file_size = header.data_path.stat().st_size
    except OSError as exc:
        raise InputError(f"The data file {header.data_path.name} named in {header.name} cannot be read") from exc
    needed = header.skip + header.nbytes
    if header.encoding == "raw":
        held = file_size - header.data_start
    elif header.encoding in ("ascii", "hex"):  # a value takes at least 1 character (2 in hex) and a separator
        per_value = 2 * header.voxel_bytes if header.encoding == "hex" else 2
        held = (file_size - header.data_start + 1) // per_value * header.voxel_bytes
    else:
        held = _decoded_length(header, needed)
    if held >= needed:
        return
    held = max(held - header.skip, 0)
    slice_bytes = math.prod(header.sizes[:2]) * header.voxel_bytes
    if header.depth > 1:
        amount = f"{held // slice_bytes} of {header.depth} slices"
    else:
        amount = f"{_gb(held)} of the {_gb(header.nbytes)} of image data it claims"
    raise InputError(f"{header.name} is truncated: it holds {amount} (copied or exported incompletely); copy or "
                     "export it again")


# ---------------------------------------------------------------------------------------------------- NRRD

NRRD_TYPES = {
    1: ("signed char", "int8", "int8_t", "uchar", "unsigned char", "uint8", "uint8_t"),
    2: ("short", "short int", "signed short", "signed short int", "int16", "int16_t", "ushort", "unsigned short",
        "unsigned short int", "uint16", "uint16_t"),
    4: ("int", "signed int", "int32", "int32_t", "uint", "unsigned int", "uint32", "uint32_t", "float"),
    8: ("longlong", "long long", "long long int", "signed long long", "signed long long int", "int64", "int64_t",
        "ulonglong", "unsigned long long", "unsigned long long int", "uint64", "uint64_t", "double"),
}
NRRD_TYPE_BYTES = {name: size for size, names in NRRD_TYPES.items() for name in names}
NRRD_ENCODINGS = {"raw": "raw", "gzip": "gzip", "gz": "gzip", "bzip2": "bzip2", "bz2": "bzip2", "ascii": "ascii",
                  "text": "ascii", "txt": "ascii", "hex": "hex"}
NRRD_SPATIAL_KINDS = {"domain", "space", "time", "???", "none"}


def _text_header(path: Path, first: bytes, stop) -> tuple[list[str], int]:
    """Lines of a text header up to the line for which `stop(line)` is true; returns them and the data offset."""
    name = path.name
    with open(path, "rb") as f:
        head = f.read(HEADER_MAX_BYTES)
    if not head.startswith(first):
        raise _damaged(name, f"it does not start with '{first.decode()}'")
    lines, offset = [], 0
    for raw_line in head.splitlines(keepends=True):
        if not raw_line.endswith(b"\n") and offset + len(raw_line) == HEADER_MAX_BYTES:
            break
        offset += len(raw_line)
        line = raw_line.decode("latin-1").rstrip("\r\n")
        if CONTROL_CHARACTERS.search(line):
            raise _damaged(name, "its text header holds binary bytes")
        if stop(line):
            return lines + [line], offset
        lines.append(line)
    if len(head) < HEADER_MAX_BYTES:
        return lines, offset  # header alone (detached data) or cut: the fields decide
    raise _damaged(name, "its header does not end")


def _int(name: str, text: str, what: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise _damaged(name, f"its {what} '{text[:40]}' is not a whole number") from None


def nrrd_header(path: Path) -> ImageHeader:
    """Fields of a NRRD header (attached or detached data)."""
    name = path.name
    lines, offset = _text_header(path, b"NRRD", lambda line: line == "")
    fields = {}
    for line in lines[1:]:
        if line.startswith("#") or ":=" in line or ": " not in line:
            continue
        key, value = line.split(": ", 1)
        fields[key.strip().lower()] = value.strip()
    for required in ("sizes", "type", "encoding"):
        if required not in fields:
            raise _damaged(name, f"its NRRD header has no '{required}' field")
    sizes = [_int(name, s, "sizes") for s in fields["sizes"].split()]
    dimension = _int(name, fields.get("dimension", str(len(sizes))), "dimension")
    if dimension != len(sizes) or not sizes:
        raise _damaged(name, f"its header gives {len(sizes)} sizes for dimension {dimension}")
    kind = fields["type"].lower()
    if kind == "block":
        type_bytes = _int(name, fields.get("block size", fields.get("blocksize", "0")), "block size")
    elif kind in NRRD_TYPE_BYTES:
        type_bytes = NRRD_TYPE_BYTES[kind]
    else:
        raise _damaged(name, f"unknown NRRD type '{fields['type'][:40]}'")
    encoding = NRRD_ENCODINGS.get(fields["encoding"].lower())
    if encoding is None:
        raise _damaged(name, f"unknown NRRD encoding '{fields['encoding'][:40]}'")
    kinds = fields.get("kinds", "").lower().split()
    components = [s for s, k in zip(sizes, kinds, strict=False) if k not in NRRD_SPATIAL_KINDS]
    spatial = [s for i, s in enumerate(sizes) if i >= len(kinds) or kinds[i] in NRRD_SPATIAL_KINDS]
    voxel_bytes = type_bytes * math.prod(components)
    spatial = (spatial + [1, 1])[:max(2, len(spatial))]
    data_file = fields.get("data file", fields.get("datafile"))
    data_path: Path | None = path
    if data_file is not None:
        if not data_file:
            raise _damaged(name, "its 'data file' field is empty")
        if data_file.split()[0] == "LIST" or len(data_file.split()) > 1:
            data_path, offset = None, 0  # several data files: the size is checked, completeness by ITK
        else:
            data_path, offset = path.parent / data_file, 0
            if not data_path.is_file():
                raise InputError(f"The data file {data_file} named in {name} is missing")
    elif len(lines) == 0 or lines[-1] != "":
        raise _damaged(name, "its header is cut before the image data")
    line_skip = _int(name, fields.get("line skip", fields.get("lineskip", "0")), "line skip")
    if data_path is not None and line_skip > 0:
        with open(data_path, "rb") as f:
            f.seek(offset)
            for _ in range(line_skip):
                line = f.readline(HEADER_MAX_BYTES)
                if not line:
                    break
                offset += len(line)
    skip = _int(name, fields.get("byte skip", fields.get("byteskip", "0")), "byte skip")
    if skip == -1 and encoding == "raw" and data_path is not None:  # the data are the last bytes of the file
        offset = max(data_path.stat().st_size - math.prod(spatial) * voxel_bytes, offset)
    if skip < 0:
        skip = 0
    elif encoding == "raw":
        offset, skip = offset + skip, 0
    return ImageHeader(name, tuple(spatial), voxel_bytes, data_path, offset, encoding, skip)


# ---------------------------------------------------------------------------------------------------- NIfTI

NIFTI_TYPE_BYTES = {2: 1, 4: 2, 8: 4, 16: 4, 32: 8, 64: 8, 128: 3, 256: 1, 512: 2, 768: 4, 1024: 8, 1280: 8,
                    1536: 16, 1792: 16, 2048: 32, 2304: 4}


def nifti_header(path: Path) -> ImageHeader:
    """Fields of a NIfTI-1 or NIfTI-2 header, either byte order, gzipped or not (only the header is decoded)."""
    name = path.name
    with open(path, "rb") as f:
        compressed = f.read(2) == b"\x1f\x8b"
    try:
        with (gzip.open(path, "rb") if compressed else open(path, "rb")) as f:
            head = f.read(540)
    except (OSError, EOFError, zlib.error) as exc:
        raise _damaged(name, "its gzip data are corrupt") from exc
    if len(head) < 348:
        raise _damaged(name, f"it is {len(head)} bytes long, shorter than a NIfTI header")
    for order in "<>":
        size = struct.unpack(order + "i", head[:4])[0]
        if size == 348:
            dims = struct.unpack(order + "8h", head[40:56])
            datatype = struct.unpack(order + "h", head[70:72])[0]
            vox_offset, minimum = struct.unpack(order + "f", head[108:112])[0], 352
            break
        if size == 540 and len(head) == 540:
            dims = struct.unpack(order + "8q", head[16:80])
            datatype = struct.unpack(order + "h", head[12:14])[0]
            vox_offset, minimum = struct.unpack(order + "q", head[168:176])[0], 544
            break
    else:
        raise _damaged(name, "its first bytes are not a NIfTI header")
    if not 1 <= dims[0] <= 7:
        raise _damaged(name, f"its header claims {dims[0]} dimensions")
    if datatype not in NIFTI_TYPE_BYTES:
        raise _damaged(name, f"unknown NIfTI data type {datatype}")
    if not math.isfinite(vox_offset) or vox_offset > 1 << 40:
        raise _damaged(name, f"its data offset {vox_offset} is invalid")
    sizes = list(dims[1:dims[0] + 1]) + [1] * max(0, 2 - dims[0])
    start = max(int(vox_offset), minimum) if path.suffix != ".hdr" else 0
    data_path = path if path.suffix != ".hdr" else None  # .hdr/.img pairs: the size is checked, completeness by ITK
    return ImageHeader(name, tuple(sizes), NIFTI_TYPE_BYTES[datatype], data_path, 0 if compressed else start,
                       "gzip" if compressed else "raw", start if compressed else 0)


# ---------------------------------------------------------------------------------------------------- MetaImage

MET_TYPE_BYTES = {"MET_CHAR": 1, "MET_UCHAR": 1, "MET_SHORT": 2, "MET_USHORT": 2, "MET_INT": 4, "MET_UINT": 4,
                  "MET_LONG": 4, "MET_ULONG": 4, "MET_LONG_LONG": 8, "MET_ULONG_LONG": 8, "MET_FLOAT": 4,
                  "MET_DOUBLE": 8}

MET_MAX_DIMENSIONS = 5
MET_ARRAY_FIELDS = {"ElementSpacing": 1, "ElementSize": 1, "Offset": 1, "Position": 1, "Origin": 1,
                    "CenterOfRotation": 1, "TransformMatrix": 2, "Rotation": 2, "Orientation": 2}  # NDims ** value


def _true(value: str) -> bool:
    """A MetaImage boolean as MetaIO reads it (first letter)."""
    return value[:1] in ("T", "t", "1")


def metaimage_header(path: Path) -> ImageHeader:
    """Fields of a MetaImage header (.mha with its data, .mhd with a separate data file)."""
    name = path.name
    lines, offset = _text_header(path, b"", lambda line: line.split("=")[0].strip() == "ElementDataFile")
    fields = {line.split("=", 1)[0].strip(): line.split("=", 1)[1].strip() for line in lines if "=" in line}
    for required in ("DimSize", "ElementType", "ElementDataFile"):
        if required not in fields:
            raise _damaged(name, f"its MetaImage header has no '{required}' field")
    sizes = [_int(name, s, "DimSize") for s in fields["DimSize"].split()]
    dimensions = _int(name, fields.get("NDims", str(len(sizes))), "NDims")
    if not 1 <= dimensions <= MET_MAX_DIMENSIONS or len(sizes) != dimensions:
        raise _damaged(name, f"its header gives {len(sizes)} sizes for {dimensions} dimensions")
    for key, power in MET_ARRAY_FIELDS.items():  # ITK's MetaIO reads NDims (or NDims²) values from these blindly
        count = dimensions**power
        try:
            numbers = [float(v) for v in fields.get(key, "0 " * count).split()]
        except ValueError:
            raise _damaged(name, f"its {key} '{fields[key][:40]}' is not a list of numbers") from None
        if len(numbers) != count or not all(math.isfinite(v) for v in numbers):
            raise _damaged(name, f"its {key} needs {count} numbers")
    if fields["ElementType"] not in MET_TYPE_BYTES:
        raise _damaged(name, f"unknown MetaImage element type '{fields['ElementType'][:40]}'")
    voxel_bytes = MET_TYPE_BYTES[fields["ElementType"]] * _int(
        name, fields.get("ElementNumberOfChannels", "1"), "ElementNumberOfChannels")
    data_file = fields["ElementDataFile"]
    data_path: Path | None = path
    if not data_file:
        raise _damaged(name, "its 'ElementDataFile' field is empty")
    if data_file != "LOCAL":
        offset = 0
        data_path = None if data_file.startswith("LIST") or len(data_file.split()) > 1 else path.parent / data_file
        if data_path is not None and not data_path.is_file():
            raise InputError(f"The data file {data_file} named in {name} is missing")
    sizes = (sizes + [1, 1])[:max(2, len(sizes))]
    header_size = _int(name, fields.get("HeaderSize", "0"), "HeaderSize")
    binary = _true(fields.get("BinaryData", "True"))
    encoding = "zlib" if _true(fields.get("CompressedData", "False")) else "raw" if binary else "ascii"
    if header_size == -1 and data_path is not None and encoding == "raw":
        offset = max(data_path.stat().st_size - math.prod(sizes) * voxel_bytes, offset)
    elif header_size > 0:
        offset += header_size
    return ImageHeader(name, tuple(sizes), voxel_bytes, data_path, offset, encoding)


# ---------------------------------------------------------------------------------------------------- rasters

PIL_SUFFIXES = {".png", ".jpg", ".jpeg", ".pgm", ".ppm", ".pbm", ".tif", ".tiff", ".bmp"}


def raster_header(path: Path) -> ImageHeader:
    """Size of a PNG / JPEG / TIFF / PGM / BMP from Pillow's lazy open (nothing decoded)."""
    name = path.name
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                columns, rows = image.size
                frames = getattr(image, "n_frames", 1)
                bands = len(image.getbands())
                band_bytes = 2 if image.mode.startswith("I;16") else 4 if image.mode in ("I", "F") else 1
    except Image.DecompressionBombError as exc:
        raise InputError(f"{name} claims more than {2 * Image.MAX_IMAGE_PIXELS / 1e6:.0f} million pixels "
                         "(a decompression bomb or a damaged header); it is not read") from exc
    except (OSError, SyntaxError, ValueError, EOFError, struct.error, IndexError, KeyError, TypeError) as exc:
        # Pillow's format plugins raise these on damaged headers
        raise _damaged(name, "its header cannot be read") from exc
    return ImageHeader(name, (columns, rows, frames), bands * band_bytes)


# ---------------------------------------------------------------------------------------------------- DICOM

NATIVE_TRANSFER_SYNTAXES = {"1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2"}
DEFLATED_TRANSFER_SYNTAX = "1.2.840.10008.1.2.1.99"
IMPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2"  # the transfer syntax of a dataset without file meta information
PIXEL_DATA_TAG = 0x7FE00010


@dataclass(frozen=True)
class DicomHeader:
    """A DICOM file's header with every element decoded; `image` is None when no pixel data follow it, `held` the
    bytes of uncompressed pixel data the file holds (None: compressed, counted by the decoder)."""

    ds: pydicom.Dataset
    image: ImageHeader | None
    held: int | None


def read_dicom_header(path: Path, force: bool = False) -> DicomHeader:
    """The header of a DICOM file, read up to its pixel data; `force` reads files without the DICOM preamble too."""
    import pydicom

    name = path.name
    try:
        with open(path, "rb") as f, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pydicom's warnings on damaged values: the user reads our message
            ds = pydicom.dcmread(f, stop_before_pixels=True, force=force)
            pixel_start = f.tell()
            file_size = os.fstat(f.fileno()).st_size
            element = f.read(12)
            meta = getattr(ds, "file_meta", None)
            for dataset in filter(None, (ds, meta)):  # decode every element now: a damaged value fails here, not
                dataset.walk(lambda dataset, element: None)  # later (nor in GDCM, which may then take gigabytes)
        syntax = str(meta.get("TransferSyntaxUID", "")) if meta is not None else ""
        implicit, little = ds.original_encoding
        length, header_bytes = _pixel_data_length(element, bool(implicit), little is not False)
        rows, columns = int(ds.get("Rows") or 0), int(ds.get("Columns") or 0)
        frames = int(ds.get("NumberOfFrames") or 1)
        samples, bits = int(ds.get("SamplesPerPixel") or 1), int(ds.get("BitsAllocated") or 16)
    except Exception as exc:  # pydicom raises many types (struct.error, KeyError, ValueError...) on damaged headers
        raise InputError(f"{name} is not a readable DICOM file (its header is truncated or damaged); copy or export "
                         "it again") from exc
    if not syntax and getattr(ds, "preamble", None) is not None:  # GDCM reads such a file in a costly fallback mode
        raise _damaged(name, "its DICOM file meta information (transfer syntax) is missing or damaged")
    if length is None and syntax != DEFLATED_TRANSFER_SYNTAX:
        return DicomHeader(ds, None, None)
    if not rows or not columns:
        raise _damaged(name, "its DICOM header gives no image size (Rows, Columns)")
    if bits not in (1, 8, 16, 32, 64) or samples not in (1, 3, 4):
        raise _damaged(name, f"its DICOM header claims {bits} bits and {samples} samples per pixel")
    image = ImageHeader(name, (columns, rows, frames), samples * max(bits // 8, 1))
    native = (syntax or IMPLICIT_VR_LITTLE_ENDIAN) in NATIVE_TRANSFER_SYNTAXES and length not in (None, 0xFFFFFFFF)
    held = max(min(length, file_size - pixel_start - header_bytes), 0) if native else None
    return DicomHeader(ds, image, held)


def check_dicom(header: DicomHeader, limit: SizeLimit) -> None:
    """Refuse a DICOM image beyond `limit` or with less pixel data than its header claims."""
    if header.image is None:
        return
    check_size(header.image, limit)
    bits = int(header.ds.get("BitsAllocated") or 16)
    needed = math.ceil(header.image.nbytes * bits / (8 * max(bits // 8, 1)))
    if header.held is not None and header.held < needed:
        raise InputError(f"{header.image.name} is truncated: it holds {_gb(header.held)} of the {_gb(needed)} of "
                         "image data its header claims (copied or exported incompletely); copy or export it again")


def _pixel_data_length(element: bytes, implicit: bool, little: bool) -> tuple[int | None, int]:
    """Value length and header size of the Pixel Data element that starts with `element`; (None, 0) if there is
    none."""
    order = "<" if little else ">"
    header_bytes = 8 if implicit else 12
    if len(element) < header_bytes:
        return None, 0
    group, number = struct.unpack(order + "HH", element[:4])
    if (group << 16 | number) != PIXEL_DATA_TAG:
        return None, 0
    return struct.unpack(order + "I", element[header_bytes - 4:header_bytes])[0], header_bytes


# ---------------------------------------------------------------------------------------------------- any file

def file_suffix(path: str | os.PathLike) -> str:
    """Lower-case suffix, keeping the double suffixes `.nii.gz` and `.seg.nrrd`."""
    name = Path(path).name.lower()
    for double in (".nii.gz", ".seg.nrrd"):
        if name.endswith(double):
            return double
    return Path(name).suffix


def is_dicom(path: str | os.PathLike) -> bool:
    """True when the file carries the DICOM preamble ('DICM' at byte 128)."""
    try:
        with open(path, "rb") as f:
            f.seek(128)
            return f.read(4) == b"DICM"
    except OSError:
        return False


def is_dicom_source(source: str | os.PathLike | None) -> bool:
    """Whether `source` is a DICOM file or a folder holding one."""
    if source is None:
        return False
    source = Path(source)
    if source.is_dir():
        return any(f.is_file() and is_dicom(f) for f in source.iterdir())
    return source.is_file() and is_dicom(source)


def image_header(path: Path) -> ImageHeader:
    """What an image file claims, by format (NRRD, NIfTI, MetaImage, raster, else ITK's header reader)."""
    suffix = file_suffix(path)
    if suffix in (".nrrd", ".nhdr", ".seg.nrrd"):
        return nrrd_header(path)
    if suffix in (".nii", ".nii.gz", ".hdr"):
        return nifti_header(path)
    if suffix in (".mha", ".mhd"):
        return metaimage_header(path)
    if suffix in PIL_SUFFIXES:
        return raster_header(path)
    return _itk_header(path)


def _itk_header(path: Path) -> ImageHeader:
    import SimpleITK as sitk

    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as exc:
        raise InputError(f"{path.name} could not be read as an image (corrupt or unsupported format)") from exc
    pixel = sitk.GetPixelIDValueAsString(reader.GetPixelID())
    bits = next((b for b in (8, 16, 32, 64) if f"{b}-bit" in pixel), 64) * (2 if "complex" in pixel else 1)
    sizes = tuple(reader.GetSize())
    return ImageHeader(path.name, sizes + (1,) * max(0, 2 - len(sizes)), bits // 8 * reader.GetNumberOfComponents())


def check_image_file(path: str | os.PathLike, limit: SizeLimit = ANY_IMAGE) -> None:
    """Refuse, from its header alone, an image file beyond `limit`, damaged, or holding less data than it claims."""
    path = Path(path)
    if is_dicom(path) or path.suffix.lower() in (".dcm", ".dicom"):
        header = read_dicom_header(path, force=True)
        if header.image is None:
            raise InputError(f"{path.name} holds no image data (the file is truncated or damaged)")
        check_dicom(header, limit)
        return
    header = image_header(path)
    check_size(header, limit)
    check_complete(header)
