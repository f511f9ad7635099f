"""Is this file a model? Decided from its bytes, never by unpickling and never by its name alone.

:func:`sniff` reads a bounded prefix of a file and answers with a :class:`ModelFormat`
(format, framework, and the framework's version where the file states it) or None:

* pickle / joblib: the opcodes are walked with :func:`pickletools.genops` on a small simulated
  stack to find the class of the top-level object (the object at the bottom of the stack: the one
  the final NEWOBJ/REDUCE/BUILD builds, and the one still being built where joblib interrupts the
  stream with raw array bytes or the prefix ends). It is a model when that class comes from a
  known framework (sklearn, xgboost, lightgbm, catboost, torch, keras, tensorflow, statsmodels ...);
  a numpy array, a DataFrame, a dict or a list is not. Compressed joblib files (zlib, gzip, bz2,
  lzma/xz; lz4 where the lz4 package is importable) are decompressed up to a bound first.
  scikit-learn writes its version into each estimator's state (``_sklearn_version``): it is read;
* torch: a zip holding ``*/data.pkl`` with torch globals (a module or a state dict; a lone tensor
  is data), or a legacy torch pickle (its magic number first);
* ONNX: a protobuf ModelProto whose top-level fields parse (ir_version first, a graph present);
* safetensors: an 8-byte little-endian header length and a JSON header of tensors;
* Keras: a ``.keras`` zip with ``config.json`` and ``metadata.json`` (``keras_version``); HDF5
  (its signature) holding ``model_config``;
* XGBoost JSON/UBJSON with ``learner`` (its ``version``), LightGBM text (``tree\\nversion=``),
  CatBoost (``CBM1`` magic).
"""

from __future__ import annotations

import io
import json
import re
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PICKLE_LIMIT = 8 * 1024 * 1024
"""At most this many bytes of a pickle (after decompression) are walked."""
HEAD_LIMIT = 64 * 1024
"""At most this many bytes are read to recognise the other formats."""

MODEL_MODULES = {
    "sklearn": "sklearn", "xgboost": "xgboost", "lightgbm": "lightgbm", "catboost": "catboost",
    "torch": "torch", "keras": "keras", "tf_keras": "keras", "tensorflow": "tensorflow",
    "statsmodels": "statsmodels", "transformers": "transformers", "sentence_transformers": "transformers",
    "imblearn": "sklearn", "skl2onnx": "onnx", "prophet": "prophet", "pmdarima": "pmdarima",
    "onnxruntime": "onnx", "optuna": "", "spacy": "spacy", "gensim": "gensim",
}
"""Top-level package of a pickled object's class -> framework ('' = not a model)."""

PICKLE_SUFFIXES = (".pkl", ".pickle", ".joblib", ".pt", ".pth", ".ckpt", ".bin")
_TORCH_MAGIC = 0x1950A86A20F9469CFC6C
_STRING_OPS = frozenset({"SHORT_BINUNICODE", "BINUNICODE", "UNICODE", "BINUNICODE8", "SHORT_BINSTRING",
                         "BINSTRING", "STRING"})
_PUSH_OPS = frozenset({
    "NONE", "NEWTRUE", "NEWFALSE", "INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1", "LONG4", "FLOAT",
    "BINFLOAT", "BINBYTES", "SHORT_BINBYTES", "BINBYTES8", "BYTEARRAY8", "NEXT_BUFFER", "PERSID",
})
_MARK = ("mark",)
_MODEL_KEYS = frozenset({"model", "net", "network", "module", "weights", "ema"})


@dataclass(frozen=True)
class ModelFormat:
    """What a model file is: its format, the framework that wrote it, and that framework's version
    where the file says so ('' otherwise)."""

    format: str
    framework: str
    version: str = ""


@dataclass
class PickleFacts:
    """What a walk over a pickle found: the top-level object's class, if any, and hints."""

    top: tuple[str, str] | None = None
    """(module, name) of the top-level object's class; None for a container or a scalar."""
    container: str = ""
    sklearn_version: str = ""
    torch_magic: bool = False
    torch_objects: bool = False
    """A class from torch.nn or torch.optim appears somewhere in the stream."""
    model_keys: bool = False
    """A string such as 'state_dict' or 'model' appears (a checkpoint dict's keys)."""


def _pop_mark(stack: list[Any]) -> list[Any]:
    items: list[Any] = []
    while stack:
        item = stack.pop()
        if item is _MARK:
            break
        items.append(item)
    items.reverse()
    return items


def _obj(callable_: Any, args: Any = None) -> tuple[Any, ...]:
    """The object a REDUCE/NEWOBJ builds: its class (a global) if known."""
    if isinstance(callable_, tuple) and callable_[:1] == ("global",):
        module, name = callable_[1], callable_[2]
        # copyreg's helpers build an instance of their first argument
        first = args[1][0] if isinstance(args, tuple) and args[:1] == ("tuple",) and args[1] else None
        if module in ("copyreg", "copy_reg") and name in ("_reconstructor", "__newobj__", "__newobj_ex__") \
                and isinstance(first, tuple) and first[:1] == ("global",):
            return ("obj", first[1], first[2])
        return ("obj", module, name)
    return ("other",)


_DECIDED = frozenset({"obj", "dict", "list", "tuple", "set", "frozenset", "scalar"})


def walk_pickle(data: bytes, *, deep: bool = False) -> PickleFacts:
    """Walk the opcodes of a pickle (never executing it) and say what its top-level object is.
    The walk stops once the bottom of the stack is built (that is the top-level object) unless
    ``deep`` (a torch checkpoint dict is told from a dict of tensors by what it holds)."""
    facts = PickleFacts()
    stack: list[Any] = []
    memo: dict[int, Any] = {}
    last_string = ""
    try:
        import pickletools  # ~10 ms: only when a pickle is looked at, not at every `workbench run`

        for opcode, arg, _ in pickletools.genops(io.BytesIO(data)):
            name = opcode.name
            if name in _STRING_OPS:
                text = arg if isinstance(arg, str) else str(arg)
                if last_string == "_sklearn_version" and not facts.sklearn_version:
                    facts.sklearn_version = text[:40]
                last_string = text
                if "state_dict" in text or text in _MODEL_KEYS:
                    facts.model_keys = True
                stack.append(("str", text))
            elif name in _PUSH_OPS:
                if name == "LONG1" and arg == _TORCH_MAGIC and not stack:
                    facts.torch_magic = True
                stack.append(("scalar",))
            elif name == "GLOBAL":
                module, _, attr = str(arg).partition(" ")
                stack.append(("global", module, attr))
                facts.torch_objects |= module.startswith(("torch.nn", "torch.optim"))
            elif name == "STACK_GLOBAL":
                attr, module = stack.pop(), stack.pop()
                found = ("global", module[1] if module[:1] == ("str",) else "?",
                         attr[1] if attr[:1] == ("str",) else "?")
                stack.append(found)
                facts.torch_objects |= str(found[1]).startswith(("torch.nn", "torch.optim"))
            elif name == "MARK":
                stack.append(_MARK)
            elif name in ("EMPTY_DICT", "EMPTY_LIST", "EMPTY_SET"):
                stack.append((name[6:].lower(), ()))
            elif name == "EMPTY_TUPLE":
                stack.append(("tuple", ()))
            elif name in ("DICT", "LIST", "TUPLE", "FROZENSET"):
                stack.append((name.lower(), tuple(_pop_mark(stack))))
            elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
                count = int(name[-1])
                items = tuple(stack[-count:])
                del stack[-count:]
                stack.append(("tuple", items))
            elif name == "APPEND":
                stack.pop()
            elif name in ("APPENDS", "SETITEMS", "ADDITEMS", "POP_MARK"):
                _pop_mark(stack)
            elif name == "SETITEM":
                del stack[-2:]
            elif name == "REDUCE":
                args = stack.pop()
                stack.append(_obj(stack.pop(), args))
            elif name == "NEWOBJ":
                stack.pop()
                stack.append(_obj(stack.pop()))
            elif name == "NEWOBJ_EX":
                del stack[-2:]
                stack.append(_obj(stack.pop()))
            elif name == "OBJ":
                marked = _pop_mark(stack)
                stack.append(_obj(marked[0]) if marked else ("other",))
            elif name == "INST":
                _pop_mark(stack)
                module, _, attr = str(arg).partition(" ")
                stack.append(("obj", module, attr))
            elif name in ("BUILD", "POP"):
                stack.pop()
            elif name == "DUP":
                stack.append(stack[-1])
            elif name == "BINPERSID":
                stack.pop()
                stack.append(("other",))
            elif name in ("EXT1", "EXT2", "EXT4"):
                stack.append(("global", "?", "?"))
            elif name == "MEMOIZE":
                memo[len(memo)] = stack[-1]
            elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
                memo[int(str(arg))] = stack[-1]
            elif name in ("GET", "BINGET", "LONG_BINGET"):
                stack.append(memo.get(int(str(arg)), ("other",)))
            elif name == "STOP":
                break
            if not deep and stack and stack[0] is not _MARK and stack[0][0] in _DECIDED:
                break
    except Exception:
        pass  # joblib interleaves raw array bytes, or the prefix ended: the stack so far is enough
    if not facts.sklearn_version:  # the key may lie beyond raw array bytes joblib put in the stream
        facts.sklearn_version = _sklearn_version(data)
    bottom = next((item for item in stack if item is not _MARK), None)
    if bottom is not None and bottom[0] in ("obj", "global"):
        facts.top = (str(bottom[1]), str(bottom[2]))
    elif bottom is not None:
        facts.container = str(bottom[0])
    return facts


_SKLEARN_VERSION = re.compile(rb"_sklearn_version(?:\x94|q.|r....)?(?:\x8c(.)|X(....))", re.DOTALL)
_SKLEARN_VERSION_0 = re.compile(rb"V_sklearn_version\n(?:p\d+\n)?V([\w.+-]{1,40})\n")


def _sklearn_version(data: bytes) -> str:
    """The string pickled right after the key ``_sklearn_version`` (SHORT_BINUNICODE or BINUNICODE)."""
    found = _SKLEARN_VERSION.search(data)
    if found is None:
        old = _SKLEARN_VERSION_0.search(data)  # protocol 0: V<text>\n, memo puts p<n>\n
        return old.group(1).decode() if old else ""
    start = found.end()
    length = found.group(1)[0] if found.group(1) else struct.unpack("<I", found.group(2))[0]
    text = data[start:start + min(length, 40)].decode("utf-8", errors="replace")
    return text if re.fullmatch(r"[\w.+-]+", text) else ""


def framework_of_class(module: str) -> str:
    """The framework a class's module belongs to ('' when none is known)."""
    return MODEL_MODULES.get(module.split(".", 1)[0], "")


def _decompressed_prefix(head: bytes, handle: Any) -> bytes | None:
    """A compressed joblib file's first :data:`PICKLE_LIMIT` bytes, decompressed; None if the
    file is not compressed in a way recognised here."""
    import bz2
    import lzma
    import zlib

    handle.seek(0)
    raw = handle.read(PICKLE_LIMIT)
    try:
        if head.startswith(b"\x1f\x8b"):
            return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(raw, PICKLE_LIMIT)
        if len(head) >= 2 and head[0] == 0x78 and (head[0] * 256 + head[1]) % 31 == 0:
            return zlib.decompressobj().decompress(raw, PICKLE_LIMIT)
        if head.startswith(b"BZh"):
            return bz2.BZ2Decompressor().decompress(raw, PICKLE_LIMIT)
        if head.startswith((b"\xfd7zXZ\x00", b"\x5d\x00\x00")):
            return lzma.LZMADecompressor().decompress(raw, PICKLE_LIMIT)
        if head.startswith(b"\x04\x22\x4d\x18"):
            import importlib

            try:
                lz4_frame = importlib.import_module("lz4.frame")
            except ImportError:
                return None
            return bytes(lz4_frame.LZ4FrameDecompressor().decompress(raw, PICKLE_LIMIT))
    except (OSError, EOFError, ValueError, zlib.error, lzma.LZMAError):
        return None
    return None


def _pickle_format(data: bytes, fmt: str) -> ModelFormat | None:
    facts = walk_pickle(data)
    if facts.torch_magic:
        return ModelFormat("torch", "torch")
    if facts.top is None:
        return None
    framework = framework_of_class(facts.top[0])
    if not framework:
        return None
    version = facts.sklearn_version if framework == "sklearn" else ""
    return ModelFormat(fmt, framework, version)


def _torch_zip(archive: zipfile.ZipFile, names: list[str]) -> ModelFormat | None:
    data_pkl = next((n for n in names if n.endswith("/data.pkl") or n == "data.pkl"), None)
    if data_pkl is None:
        return None
    with archive.open(data_pkl) as member:
        facts = walk_pickle(member.read(PICKLE_LIMIT), deep=True)
    if _torch_model(facts):
        return ModelFormat("torch", "torch")
    return None


def _torch_model(facts: PickleFacts) -> bool:
    """A module, a state dict (an OrderedDict of tensors), or a checkpoint dict that holds one
    (keys such as 'model' or 'state_dict', or torch.nn/torch.optim objects) is a model; a tensor
    or a plain dict or list of tensors is data."""
    if facts.top is not None:
        module, name = facts.top
        if facts.top == ("collections", "OrderedDict"):
            return True
        return not (module.startswith("torch") and ("_rebuild_" in name or name.endswith("Storage")))
    return facts.torch_objects or facts.model_keys


def _keras_zip(archive: zipfile.ZipFile, names: list[str]) -> ModelFormat | None:
    if "config.json" not in names or "metadata.json" not in names:
        return None
    try:
        meta = json.loads(archive.read("metadata.json")[:HEAD_LIMIT])
    except ValueError:
        meta = {}
    version = str(meta.get("keras_version", "")) if isinstance(meta, dict) else ""
    return ModelFormat("keras", "keras", version)


def _zip_format(path: Path) -> ModelFormat | None:
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()[:10_000]
            return _torch_zip(archive, names) or _keras_zip(archive, names)
    except (zipfile.BadZipFile, OSError, KeyError, ValueError, RuntimeError):
        return None


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise ValueError("bad varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos


_ONNX_FIELDS = {1: 0, 2: 2, 3: 2, 4: 2, 5: 0, 6: 2, 7: 2, 8: 2, 14: 2, 20: 2, 25: 2}
"""ModelProto's top-level fields: number -> protobuf wire type."""


def _onnx_format(handle: Any, size: int) -> ModelFormat | None:
    """A ModelProto: ir_version (field 1) first, then known fields only, a graph (field 7) among
    them. Length-delimited fields are skipped by seeking, so a large graph costs nothing."""
    pos, seen = 0, set[int]()
    while pos < size and len(seen) < 64:
        handle.seek(pos)
        chunk = handle.read(32)
        try:
            key, at = _varint(chunk, 0)
            number, wire = key >> 3, key & 7
            if _ONNX_FIELDS.get(number) != wire or (not seen and number != 1):
                return None
            value, at = _varint(chunk, at)
        except ValueError:
            return None
        if number == 1 and not 1 <= value <= 100:
            return None
        pos += at + (value if wire == 2 else 0)
        seen.add(number)
    if pos != size or 7 not in seen:
        return None
    return ModelFormat("onnx", "onnx")


def _safetensors_format(head: bytes, size: int) -> ModelFormat | None:
    length = struct.unpack("<Q", head[:8])[0]
    if not 2 <= length <= min(size - 8, 100 * 1024 * 1024) or head[8:9] != b"{":
        return None
    text = head[8:8 + length]
    if len(text) < length:
        return None  # a header beyond the prefix: too large to be one worth trusting
    try:
        header = json.loads(text)
    except ValueError:
        return None
    if not isinstance(header, dict):
        return None
    tensors = [v for k, v in header.items() if k != "__metadata__"]
    if not all(isinstance(v, dict) and "dtype" in v and "shape" in v for v in tensors):
        return None
    return ModelFormat("safetensors", "safetensors")


_XGB_VERSION = re.compile(rb'"version"\s*:\s*\[\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*\]')


def _text_format(head: bytes) -> ModelFormat | None:
    if head.startswith(b"tree\nversion=") or head.startswith(b"tree\r\nversion="):
        return ModelFormat("lightgbm", "lightgbm")
    stripped = head.lstrip()
    if stripped.startswith(b"{") and b'"learner"' in head[:HEAD_LIMIT]:
        found = _XGB_VERSION.search(head)
        version = ".".join(x.decode() for x in found.groups()) if found else ""
        return ModelFormat("xgboost", "xgboost", version)
    if stripped.startswith(b"{") and b"learner" in head[:256] and b"$" in head[:4]:
        return ModelFormat("xgboost", "xgboost")  # UBJSON: {L\x00..learner
    return None


def sniff(path: Path) -> ModelFormat | None:
    """The model format of ``path``, or None when its bytes are not a model's (or it is unreadable)."""
    try:
        with path.open("rb") as handle:
            head = handle.read(HEAD_LIMIT)
            size = path.stat().st_size
            if head.startswith(b"PK\x03\x04"):
                return _zip_format(path)
            fmt = "joblib" if path.suffix.lower() == ".joblib" else "pickle"
            if head.startswith(b"\x80") and len(head) > 1 and 2 <= head[1] <= 5:
                handle.seek(0)
                return _pickle_format(handle.read(PICKLE_LIMIT), fmt)
            if head.startswith(b"\x89HDF\r\n\x1a\n"):
                handle.seek(0)
                return ModelFormat("keras", "keras") if b"model_config" in handle.read(PICKLE_LIMIT) else None
            if head.startswith(b"CBM1"):
                return ModelFormat("catboost", "catboost")
            if head[:1] == b"\x08" and head[1:2] != b"\x00":
                return _onnx_format(handle, size)
            if len(head) >= 10 and head[8:9] == b"{":
                return _safetensors_format(head, size)
            text = _text_format(head)
            if text is not None:
                return text
            unpacked = _decompressed_prefix(head, handle)
            if unpacked and unpacked.startswith(b"\x80"):
                return _pickle_format(unpacked, "joblib")
            if path.suffix.lower() in PICKLE_SUFFIXES and head[:1] in (b"(", b"c", b"]", b"}"):
                handle.seek(0)  # protocol 0 or 1: no header, only the suffix says it may be one
                return _pickle_format(handle.read(PICKLE_LIMIT), fmt)
    except Exception:  # a heuristic over arbitrary bytes: whatever it trips on, the file is no model
        return None
    return None
