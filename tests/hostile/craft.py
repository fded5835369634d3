"""Hostile files whose bytes are consistent (valid CRCs, sha256 updated) but whose content lies.

Everything here is plain bytes: zip archives rewritten with Python's zipfile (which
recomputes every CRC32), pickles patched opcode by opcode or written by hand.
"""

from __future__ import annotations

import io
import json
import pickletools
import struct
import zipfile
from pathlib import Path

_INT_OPS = {"BININT", "BININT1", "BININT2", "LONG1", "LONG4", "INT", "LONG"}


def read_zip(path: Path) -> list[tuple[zipfile.ZipInfo, bytes]]:
    with zipfile.ZipFile(path) as z:
        return [(info, z.read(info)) for info in z.infolist()]


def write_zip(entries: list[tuple[zipfile.ZipInfo, bytes]], path: Path) -> None:
    """Write entries in order, each with its own compression; CRCs are recomputed."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        for info, data in entries:
            fresh = zipfile.ZipInfo(info.filename, date_time=info.date_time)
            fresh.compress_type = info.compress_type
            fresh.external_attr = info.external_attr
            z.writestr(fresh, data)
    Path(path).write_bytes(buffer.getvalue())


def replace_entries(src: Path, dst: Path, replace: dict) -> None:
    """Copy the archive `src` to `dst` with the entries whose name ends in a key of `replace` swapped."""
    out = []
    for info, data in read_zip(src):
        for suffix, new in replace.items():
            if info.filename.endswith(suffix):
                data = new(data) if callable(new) else new
        out.append((info, data))
    write_zip(out, dst)


def entry_name(path: Path, suffix: str) -> str | None:
    with zipfile.ZipFile(path) as z:
        return next((n for n in z.namelist() if n.endswith(suffix)), None)


def encode_int(v: int) -> bytes:
    if 0 <= v < 256:
        return b"K" + bytes([v])
    if -(1 << 31) <= v < (1 << 31):
        return b"J" + struct.pack("<i", v)
    n = (v.bit_length() + 8) // 8
    return b"\x8a" + bytes([n]) + v.to_bytes(n, "little", signed=True)


def _ops(pkl: bytes):
    ops = list(pickletools.genops(pkl))
    spans = []
    for i, (op, arg, pos) in enumerate(ops):
        end = ops[i + 1][2] if i + 1 < len(ops) else len(pkl)
        spans.append((op.name, arg, pos, end))
    return spans


def tensor_sites(pkl: bytes) -> list[dict]:
    """Where each storage's numel and each tensor's offset, sizes and strides sit (op indexes).

    Follows the layout torch's picklers write: (... numel TUPLE) BINPERSID [BINPUT]
    offset (sizes) (strides). Sites it cannot follow are skipped.
    """
    ops = _ops(pkl)
    sites = []
    for i, (name, *_rest) in enumerate(ops):
        if name != "BINPERSID":
            continue
        numel = next((j for j in range(i - 1, max(i - 4, -1), -1) if ops[j][0] in _INT_OPS), None)
        j = i + 1
        while j < len(ops) and ops[j][0] in ("BINPUT", "LONG_BINPUT", "MEMOIZE"):
            j += 1
        if j >= len(ops) or ops[j][0] not in _INT_OPS:
            sites.append({"numel": numel})
            continue
        offset = j
        groups = []
        j += 1
        for _ in range(2):
            while j < len(ops) and ops[j][0] in ("MARK", "BINPUT", "LONG_BINPUT", "EMPTY_TUPLE"):
                if ops[j][0] == "EMPTY_TUPLE":
                    break
                j += 1
            ints = []
            while j < len(ops) and ops[j][0] in _INT_OPS:
                ints.append(j)
                j += 1
            if j < len(ops) and ops[j][0] in ("TUPLE", "TUPLE1", "TUPLE2", "TUPLE3", "EMPTY_TUPLE"):
                j += 1
            groups.append(ints)
            while j < len(ops) and ops[j][0] in ("BINPUT", "LONG_BINPUT", "MEMOIZE"):
                j += 1
        sites.append({"numel": numel, "offset": offset, "sizes": groups[0], "strides": groups[1],
                      "values": {k: ops[k][1] for k in [numel, offset, *groups[0], *groups[1]] if k is not None}})
    return sites


def patch_ints(pkl: bytes, new: dict[int, int]) -> bytes:
    """Re-encode the integer opcodes at the given op indexes with new values."""
    out = bytearray()
    for i, (name, arg, pos, end) in enumerate(_ops(pkl)):
        out += encode_int(new[i]) if i in new else pkl[pos:end]
    return bytes(out)


# --- hand-written pickles -------------------------------------------------------------

PROTO = b"\x80\x02"


def deep_list(n: int) -> bytes:
    """[[[...]]] n deep: n EMPTY_LIST, then n-1 APPEND."""
    return PROTO + b"]" * n + b"a" * (n - 1) + b"."


def deep_tuple1(n: int) -> bytes:
    """((((None,),),),) n deep with one value on the stack at a time (TUPLE1 chains)."""
    return PROTO + b"N" + b"\x85" * n + b"."


def deep_mark_tuple(n: int) -> bytes:
    return PROTO + b"(" * n + b"N" + b"t" * n + b"."


def deep_dict(n: int) -> bytes:
    """{'k': {'k': ...}} n deep."""
    return PROTO + (b"}X\x01\x00\x00\x00k") * n + b"N" + b"s" * n + b"."


def late_nesting(n: int) -> bytes:
    """n empty lists made first (memoised), then list i appended into list i-1: the depth only
    exists after the fact, so a checker that tracks depth as it goes sees 2."""
    out = bytearray(PROTO)
    for i in range(n):
        out += b"]" + b"r" + struct.pack("<I", i) + b"0"  # EMPTY_LIST, LONG_BINPUT i, POP
    for i in range(1, n):
        out += b"j" + struct.pack("<I", i - 1) + b"j" + struct.pack("<I", i) + b"a0"
    out += b"j" + struct.pack("<I", 0) + b"."
    return bytes(out)


def cycle() -> bytes:
    """A list that contains itself."""
    return PROTO + b"]q\x00h\x00a."


def tensor_pickle(numel: int, offset: int, sizes: tuple, strides: tuple, dtype: str = "FloatStorage",
                  key: str = "0", as_list: bool = True) -> bytes:
    """What torch.save([tensor]) writes, with any metadata."""
    def tup(values):
        return b"(" + b"".join(encode_int(v) for v in values) + b"t"

    def s(text):
        raw = text.encode()
        return b"X" + struct.pack("<I", len(raw)) + raw

    tensor = (b"ctorch._utils\n_rebuild_tensor_v2\n(" + b"(" + s("storage") + b"ctorch\n" + dtype.encode()
              + b"\n" + s(key) + s("cpu") + encode_int(numel) + b"tQ" + encode_int(offset) + tup(sizes)
              + tup(strides) + b"\x89ccollections\nOrderedDict\n)Rt" + b"R")
    return PROTO + (b"](" + tensor + b"e." if as_list else tensor + b".")


def torch_save_archive(pkl: bytes, records: dict[str, bytes], path: Path, root: str = "archive") -> None:
    """A zip laid out like torch.save's, around any data.pkl and storage records."""
    entries = [(zipfile.ZipInfo(f"{root}/data.pkl"), pkl), (zipfile.ZipInfo(f"{root}/.format_version"), b"1"),
               (zipfile.ZipInfo(f"{root}/.storage_alignment"), b"64"), (zipfile.ZipInfo(f"{root}/byteorder"), b"little")]
    entries += [(zipfile.ZipInfo(f"{root}/data/{k}"), v) for k, v in records.items()]
    entries += [(zipfile.ZipInfo(f"{root}/version"), b"3\n")]
    write_zip(entries, path)


def code_bomb(src: Path, dst: Path, kind: str, n: int) -> None:
    """The archive with an expression n deep or long appended to the first statement of forward."""
    name = entry_name(src, ".py")
    with zipfile.ZipFile(src) as z:
        names = [x for x in z.namelist() if "/code/" in x and x.endswith(".py")]
        code = {x: z.read(x).decode() for x in names}
    name = next(x for x in names if "def forward" in code[x] and "return" in code[x])
    expr = {"parens": "(" * n + "0" + ")" * n, "unary": "-" * n + "0", "binop": "+".join(["1"] * n),
            "list": "[" * n + "]" * n, "not": "not " * n + "True", "call": "int(" * n + "0" + ")" * n}[kind]
    lines = code[name].split("\n")
    at = next(i for i, line in enumerate(lines) if line.strip().startswith("return"))
    indent = lines[at][: len(lines[at]) - len(lines[at].lstrip())]
    lines.insert(at, f"{indent}_bomb = {expr}")
    replace_entries(src, dst, {name: "\n".join(lines).encode()})


def deep_json(n: int) -> str:
    return "[" * n + "]" * n


def update_sidecar_sha(manifest: Path, pointer: tuple[str, ...], file: Path) -> None:
    """Re-record file's sha256 in manifest.json at `pointer` (e.g. ("formats", "torchscript"))."""
    import hashlib

    data = json.loads(manifest.read_text())
    node = data
    for key in pointer:
        node = node[key]
    node["sha256"] = hashlib.sha256(file.read_bytes()).hexdigest()
    manifest.write_text(json.dumps(data, indent=2))
