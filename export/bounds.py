"""Bounds checks for files torchship hands to torch.jit.load, torch.load and json.

libtorch trusts what a pickle says about its tensors: a storage that declares more
bytes than its record holds, or a view (offset, size, stride) that reaches past its
storage, loads without a word and is then read out of bounds (SIGSEGV, in Python too:
torch.jit.load is libtorch's loader). A pickle or a JSON document nested a million
deep exhausts a stack. CRCs and sha256 cannot catch these: the bytes are intact, the
content lies.

`check_torch_archive` runs every pickle of a zip archive through a small abstract
pickle machine (`pickletools.genops` decodes the opcodes; nothing is imported, called
or allocated for real) that tracks only what the real unpickler would build: nesting
depth, persistent-id storages ('storage', dtype, key, location, numel) and the views
`_rebuild_tensor_v2` makes of them. The same rules as cpp_runtime/bounds.cpp.

`read_json_bounded` reads a JSON file with size and depth limits.
"""

from __future__ import annotations

import json
import os
import pickletools
import stat
import zipfile
from pathlib import Path

from torchship.errors import ArtifactError

# Deepest container nesting accepted in a pickle or JSON document. Real archives nest a
# few dozen levels (modules in modules).
MAX_DEPTH = 256
# Largest JSON document (a real manifest.json or train.json is a few KB).
MAX_JSON_BYTES = 16 << 20
# Largest single pickle inside an archive.
MAX_PICKLE_BYTES = 256 << 20
# Values on the unpickler's stack at once.
MAX_STACK = 1 << 20
MAX_ELEMENTS = 1 << 62
# TorchScript source in an archive (code/**.py) is compiled by recursive descent: a
# statement with thousands of operators or brackets exhausts the stack (SIGSEGV from
# about 10,000 on an 8 MB stack). Serialised code has a handful per statement.
MAX_OPERATORS_PER_STATEMENT = 1000
MAX_INDENT = 1024
_OPERATOR_CHARS = frozenset("+-*/%&|^~<>=!@")
_OPERATOR_WORDS = frozenset({"and", "or", "not", "if", "else", "is", "in"})

_ITEMSIZE = {
    "DoubleStorage": 8, "FloatStorage": 4, "HalfStorage": 2, "BFloat16Storage": 2,
    "LongStorage": 8, "IntStorage": 4, "ShortStorage": 2, "CharStorage": 1, "ByteStorage": 1,
    "BoolStorage": 1, "ComplexDoubleStorage": 16, "ComplexFloatStorage": 8, "ComplexHalfStorage": 4,
    "QUInt8Storage": 1, "QInt8Storage": 1, "QInt32Storage": 4, "QUInt4x2Storage": 1,
    "QUInt2x4Storage": 1, "UInt16Storage": 2, "UInt32Storage": 4, "UInt64Storage": 8,
    "Int8Storage": 1, "Int16Storage": 2, "Int32Storage": 4, "Int64Storage": 8,
    "Float8_e5m2Storage": 1, "Float8_e4m3fnStorage": 1, "Float8_e5m2fnuzStorage": 1,
    "Float8_e4m3fnuzStorage": 1, "Float8_e8m0fnuStorage": 1, "UntypedStorage": 1,
    "Bits8Storage": 1, "Bits16Storage": 2,
}
_TENSOR_REBUILDS = {"_rebuild_tensor_v2", "_rebuild_tensor", "_rebuild_qtensor"}
# torch dtypes as pickled (torch.<name>), for _rebuild_tensor_v3's views of untyped storages.
_DTYPE_SIZE = {
    "float64": 8, "double": 8, "float32": 4, "float": 4, "float16": 2, "half": 2, "bfloat16": 2,
    "int64": 8, "long": 8, "int32": 4, "int": 4, "int16": 2, "short": 2, "int8": 1, "uint8": 1,
    "bool": 1, "uint16": 2, "uint32": 4, "uint64": 8, "complex128": 16, "cdouble": 16,
    "complex64": 8, "cfloat": 8, "complex32": 4, "chalf": 4, "float8_e5m2": 1, "float8_e4m3fn": 1,
    "float8_e5m2fnuz": 1, "float8_e4m3fnuz": 1, "float8_e8m0fnu": 1, "quint8": 1, "qint8": 1,
    "qint32": 4, "bits8": 1, "bits16": 2,
}


class _Refusal(Exception):
    pass


class _Global:
    __slots__ = ("module", "name")

    def __init__(self, module: str, name: str):
        self.module, self.name = module, name


class _Storage:
    __slots__ = ("key", "numel", "itemsize")

    def __init__(self, key: str, numel: int, itemsize: int):
        self.key, self.numel, self.itemsize = key, numel, itemsize


class _Node:
    """A container the real unpickler would build; tuples keep their items."""

    __slots__ = ("kind", "items", "children", "depth")

    def __init__(self, kind: str, items: list | None = None):
        self.kind = kind
        self.items = items if kind == "tuple" else None
        self.children = [x for x in (items or ()) if isinstance(x, _Node)]
        self.depth = 1 + max((c.depth for c in self.children), default=0)
        if self.depth > MAX_DEPTH:
            raise _Refusal(f"nests deeper than {MAX_DEPTH} levels")

    def add(self, values) -> None:
        for v in values:
            if isinstance(v, _Node):
                self.children.append(v)
                if v.depth + 1 > self.depth:
                    self.depth = v.depth + 1
                    if self.depth > MAX_DEPTH:
                        raise _Refusal(f"nests deeper than {MAX_DEPTH} levels")


_MARK = object()


def _int(v, what: str) -> int:
    if isinstance(v, bool):
        return int(v)
    if not isinstance(v, int):
        raise _Refusal(f"{what} is not an integer")
    if not -(1 << 63) <= v < (1 << 63):
        raise _Refusal(f"{what} does not fit 64 bits")
    return v


def _tuple(v, what: str) -> list:
    if not (isinstance(v, _Node) and v.kind == "tuple"):
        raise _Refusal(f"{what} is not a tuple")
    return v.items


def _show(text) -> str:
    return "".join(c if " " <= c <= "~" else "?" for c in str(text)[:160])


class _Machine:
    def __init__(self, data: bytes, record_size, empty_records_ok: bool):
        self.data = data
        self.record_size = record_size
        self.empty_records_ok = empty_records_ok
        self.stack: list = []
        self.marks: list[int] = []
        self.memo: dict = {}
        self.nodes: list[_Node] = []

    def node(self, kind: str, items=None) -> _Node:
        n = _Node(kind, items)
        self.nodes.append(n)
        return n

    def pop(self):
        if not self.stack or (self.marks and self.marks[-1] == len(self.stack)):
            raise _Refusal("pops a value from an empty stack")
        return self.stack.pop()

    def top(self):
        if not self.stack:
            raise _Refusal("reads an empty stack")
        return self.stack[-1]

    def pop_mark(self) -> list:
        if not self.marks:
            raise _Refusal("closes a MARK it never opened")
        mark = self.marks.pop()
        items = self.stack[mark:]
        del self.stack[mark:]
        return items

    def add_to_top(self, values, opcode: str) -> None:
        target = self.top()
        if not isinstance(target, _Node):
            raise _Refusal(f"{opcode} into a value that is not a container")
        target.add(values)

    def storage(self, pid) -> _Storage:
        items = _tuple(pid, "a persistent id")
        if len(items) < 5 or items[0] != "storage":
            raise _Refusal("has a persistent id other than ('storage', type, key, location, numel)")
        cls, key = items[1], items[2]
        if not isinstance(cls, _Global):
            raise _Refusal("has a storage whose type is not a class")
        itemsize = (_ITEMSIZE.get(cls.name, 0) if cls.module == "torch" else
                    1 if (cls.module, cls.name) == ("torch.storage", "UntypedStorage") else 0)
        if not itemsize:
            raise _Refusal(f"has a storage of unknown type {_show(cls.module + '.' + cls.name)}")
        if not isinstance(key, str):
            raise _Refusal("has a storage whose key is not a string")
        numel = _int(items[4], "a storage's element count")
        if numel < 0:
            raise _Refusal(f"declares storage '{_show(key)}' with a negative size")
        have = self.record_size(key)
        if have is None:
            raise _Refusal(f"names storage record '{_show(key)}', which the archive does not have")
        if numel * itemsize > have and not (have == 0 and self.empty_records_ok):
            raise _Refusal(f"declares storage '{_show(key)}' of {numel} x {itemsize} bytes "
                           f"but its record holds {have} bytes")
        return _Storage(key, numel, itemsize)

    @staticmethod
    def check_view(args: list, function: str, element_size: int = 0) -> None:
        if len(args) < 4:
            raise _Refusal(f"{function} with {len(args)} arguments, not at least 4")
        storage = args[0]
        if not isinstance(storage, _Storage):
            raise _Refusal(f"{function} of something that is not a storage")
        offset = _int(args[1], "a tensor's storage offset")
        sizes = [_int(s, "a tensor's size") for s in _tuple(args[2], "a tensor's size")]
        strides = [_int(s, "a tensor's stride") for s in _tuple(args[3], "a tensor's stride")]
        if len(sizes) != len(strides):
            raise _Refusal(f"has a tensor with {len(sizes)} sizes but {len(strides)} strides")
        if offset < 0 or any(s < 0 for s in sizes) or any(s < 0 for s in strides):
            raise _Refusal("has a tensor with a negative storage offset, size or stride")
        elements, extent = 1, 1
        for size, stride in zip(sizes, strides):
            elements *= max(size, 1)
            extent += max(size - 1, 0) * stride
            if elements > MAX_ELEMENTS or extent > MAX_ELEMENTS:
                raise _Refusal("has a tensor of more than 2^62 elements")
        # In bytes: _rebuild_tensor_v3 views an untyped storage as another dtype.
        end = (offset + (0 if 0 in sizes else extent)) * (element_size or storage.itemsize)
        holds = storage.numel * storage.itemsize
        if end > holds:
            raise _Refusal(f"has a tensor whose view (offset {offset}, extent {0 if 0 in sizes else extent} "
                           f"elements) reaches byte {end} of storage '{_show(storage.key)}', which holds {holds} bytes")

    def reduce(self, callable_, args) -> _Node:
        items = _tuple(args, "REDUCE's argument")
        if isinstance(callable_, _Global) and callable_.module == "torch._utils":
            if callable_.name == "_rebuild_tensor_v3":
                dtype = items[6] if len(items) > 6 else None
                if not isinstance(dtype, _Global):
                    raise _Refusal("_rebuild_tensor_v3 without a dtype")
                size = _DTYPE_SIZE.get(dtype.name, 0) if dtype.module == "torch" else 0
                if not size:
                    raise _Refusal(f"has a tensor of unknown dtype {_show(dtype.module + '.' + dtype.name)}")
                self.check_view(items, callable_.name, size)
                return self.node("tensor", [args])
            if callable_.name in _TENSOR_REBUILDS:
                self.check_view(items, callable_.name)
                return self.node("tensor", [args])
            if (callable_.name.startswith("_rebuild") and "parameter" not in callable_.name
                    and any(isinstance(x, _Storage) for x in items)):
                raise _Refusal(f"builds a tensor with torch._utils.{_show(callable_.name)}, "
                               "which cannot be bounded")
        return self.node("object", [args, callable_])

    def run(self) -> None:
        stack, marks = self.stack, self.marks
        push = stack.append
        stopped = False
        try:
            for op, arg, pos in pickletools.genops(self.data):
                name = op.name
                if name in ("PROTO", "FRAME"):
                    pass
                elif name == "STOP":
                    stopped = True
                    break
                elif name == "MARK":
                    marks.append(len(stack))
                    if len(marks) > MAX_DEPTH:
                        raise _Refusal(f"nests deeper than {MAX_DEPTH} levels")
                elif name == "POP":
                    if marks and marks[-1] == len(stack):
                        marks.pop()
                    else:
                        self.pop()
                elif name == "POP_MARK":
                    self.pop_mark()
                elif name == "DUP":
                    push(self.top())
                elif name in ("NONE", "NEWTRUE", "NEWFALSE"):
                    push({"NONE": None, "NEWTRUE": True, "NEWFALSE": False}[name])
                elif name in ("INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1", "LONG4",
                              "FLOAT", "BINFLOAT"):
                    push(arg)
                elif name in ("STRING", "BINSTRING", "SHORT_BINSTRING", "UNICODE", "BINUNICODE",
                              "SHORT_BINUNICODE", "BINUNICODE8"):
                    push(arg if isinstance(arg, str) else str(arg)[:256])
                elif name in ("BINBYTES", "SHORT_BINBYTES", "BINBYTES8", "BYTEARRAY8"):
                    push(b"")
                elif name == "GLOBAL":
                    module, _, attr = arg.partition(" ")
                    push(_Global(module, attr))
                elif name == "STACK_GLOBAL":
                    attr, module = self.pop(), self.pop()
                    if not (isinstance(attr, str) and isinstance(module, str)):
                        raise _Refusal("has a STACK_GLOBAL whose names are not strings")
                    push(_Global(module, attr))
                elif name == "EMPTY_TUPLE":
                    push(self.node("tuple", []))
                elif name == "TUPLE":
                    push(self.node("tuple", self.pop_mark()))
                elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
                    n = int(name[-1])
                    items = [self.pop() for _ in range(n)][::-1]
                    push(self.node("tuple", items))
                elif name in ("EMPTY_LIST", "EMPTY_DICT", "EMPTY_SET"):
                    push(self.node(name[6:].lower()))
                elif name in ("LIST", "DICT", "FROZENSET"):
                    push(self.node(name.lower(), self.pop_mark()))
                elif name == "APPEND":
                    x = self.pop()
                    self.add_to_top([x], name)
                elif name in ("APPENDS", "SETITEMS", "ADDITEMS"):
                    items = self.pop_mark()
                    self.add_to_top(items, name)
                elif name == "SETITEM":
                    v, k = self.pop(), self.pop()
                    self.add_to_top([k, v], name)
                elif name == "BUILD":
                    state = self.pop()
                    self.add_to_top([state], name)
                elif name == "REDUCE":
                    args, callable_ = self.pop(), self.pop()
                    push(self.reduce(callable_, args))
                elif name == "NEWOBJ":
                    args, cls = self.pop(), self.pop()
                    push(self.node("object", [cls, args]))
                elif name == "NEWOBJ_EX":
                    kwargs, args, cls = self.pop(), self.pop(), self.pop()
                    push(self.node("object", [cls, args, kwargs]))
                elif name == "BINPERSID":
                    push(self.storage(self.pop()))
                elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
                    self.memo[arg] = self.top()
                elif name == "MEMOIZE":
                    self.memo[len(self.memo)] = self.top()
                elif name in ("GET", "BINGET", "LONG_BINGET"):
                    if arg not in self.memo:
                        raise _Refusal(f"reads memo entry {arg}, which was never stored")
                    push(self.memo[arg])
                else:
                    raise _Refusal(f"uses pickle opcode {name} at offset {pos}, "
                                   "which torch's unpickler does not accept")
                if len(stack) > MAX_STACK:
                    raise _Refusal(f"holds more than {MAX_STACK} values at once")
        except ValueError as e:  # genops: unknown opcode, truncated argument
            raise _Refusal(f"is not a valid pickle ({_show(str(e).splitlines()[0] if str(e) else e)})") from None
        if not stopped:
            raise _Refusal("ends before its STOP opcode (truncated pickle)")
        if len(stack) != 1:
            raise _Refusal(f"ends with {len(stack)} values on its stack, not 1")
        self.check_graph()

    def check_graph(self) -> None:
        """True depth (containers filled after they were nested) and cycles, without recursion."""
        depth: dict[int, int] = {}  # id(node) -> depth; -1 while on the path
        for root in self.nodes:
            if id(root) in depth:
                continue
            depth[id(root)] = -1
            path = [(root, iter(root.children))]
            while path:
                node, children = path[-1]
                child = next(children, None)
                if child is not None:
                    d = depth.get(id(child))
                    if d == -1:
                        raise _Refusal("contains a reference cycle")
                    if d is None:
                        depth[id(child)] = -1
                        path.append((child, iter(child.children)))
                    continue
                d = 1 + max((depth[id(c)] for c in node.children), default=0)
                if d > MAX_DEPTH:
                    raise _Refusal(f"nests deeper than {MAX_DEPTH} levels")
                depth[id(node)] = d
                path.pop()


def check_code_text(text: bytes) -> None:
    """Bracket depth, operators per statement and indentation of TorchScript source (raises _Refusal)."""
    src = text.decode("utf-8", "replace")
    depth = operators = 0
    line, indent, line_start = 1, 0, True
    i, n = 0, len(src)
    while i < n:
        c = src[i]
        if line_start:
            if c in " \t":
                indent += 1
                if indent > MAX_INDENT:
                    raise _Refusal(f"indents line {line} deeper than {MAX_INDENT} columns")
                i += 1
                continue
            line_start = False
        if c == "\n":
            line, indent, line_start = line + 1, 0, True
            if depth == 0:
                operators = 0
        elif c == "#":
            end = src.find("\n", i)
            i = n if end < 0 else end
            continue
        elif c in "\"'":
            close = c * 3 if src.startswith(c * 3, i) else c
            j = i + len(close)
            while j < n and not src.startswith(close, j):
                if src[j] == "\\":
                    j += 1
                elif src[j] == "\n":
                    line += 1
                j += 1
            i = j + len(close)
            continue
        elif c in "([{":
            depth += 1
            if depth > MAX_DEPTH:
                raise _Refusal(f"nests brackets deeper than {MAX_DEPTH} levels on line {line}")
        elif c in ")]}":
            depth = max(depth - 1, 0)
        elif c == ";" and depth == 0:
            operators = 0
        elif c in _OPERATOR_CHARS:
            operators += 1
        elif (c.isalpha() or c == "_") and (i == 0 or not (src[i - 1].isalnum() or src[i - 1] == "_")):
            j = i
            while j < n and (src[j].isalnum() or src[j] == "_"):
                j += 1
            if src[i:j] in _OPERATOR_WORDS:
                operators += 1
            i = j
            if operators > MAX_OPERATORS_PER_STATEMENT:
                raise _Refusal(f"has a statement with more than {MAX_OPERATORS_PER_STATEMENT} operators "
                               f"ending on line {line}")
            continue
        if operators > MAX_OPERATORS_PER_STATEMENT:
            raise _Refusal(f"has a statement with more than {MAX_OPERATORS_PER_STATEMENT} operators "
                           f"ending on line {line}")
        i += 1


def check_json_text(text: str | bytes, what: str, fix: str) -> None:
    """Raise ArtifactError unless `text` is at most MAX_JSON_BYTES and nests at most MAX_DEPTH."""
    if len(text) > MAX_JSON_BYTES:
        raise ArtifactError(f"{what} is {len(text)} bytes, more than the {MAX_JSON_BYTES} a torchship "
                            f"JSON file may have; {fix}")
    if isinstance(text, str):
        text = text.encode("utf-8", "surrogatepass")
    # Only brackets outside strings count: drop escaped characters and strings first.
    depth = 0
    in_string = escaped = False
    for c in text:
        if in_string:
            if escaped:
                escaped = False
            elif c == 0x5C:  # backslash
                escaped = True
            elif c == 0x22:  # quote
                in_string = False
        elif c == 0x22:
            in_string = True
        elif c in (0x5B, 0x7B):
            depth += 1
            if depth > MAX_DEPTH:
                raise ArtifactError(f"{what} nests deeper than {MAX_DEPTH} levels; {fix}")
        elif c in (0x5D, 0x7D):
            depth -= 1


def read_json_bounded(path: Path | str, what: str, fix: str):
    """Read and parse a JSON file no bigger than MAX_JSON_BYTES nesting at most MAX_DEPTH.

    Every failure is one ArtifactError line naming the file: missing, not a regular
    file, unreadable, too big, too deep, not JSON. Returns whatever JSON value it holds;
    the caller checks its shape.
    """
    path = Path(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise ArtifactError(f"no {what} at {path}; {fix}") from None
    except OSError as e:
        raise ArtifactError(f"{what} at {path} is unreadable ({e.strerror}); {fix}") from None
    if not stat.S_ISREG(st.st_mode):
        raise ArtifactError(f"{what} at {path} is not a regular file; {fix}")
    if st.st_size > MAX_JSON_BYTES:
        raise ArtifactError(f"{what} at {path} is {st.st_size} bytes, more than the {MAX_JSON_BYTES} "
                            f"a torchship JSON file may have; {fix}")
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_JSON_BYTES + 1)
    except OSError as e:
        raise ArtifactError(f"{what} at {path} is unreadable ({e.strerror}); {fix}") from None
    check_json_text(raw, f"{what} at {path}", fix)
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as e:
        detail = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ArtifactError(f"{what} at {path} is not valid JSON ({detail}); {fix}") from None


def check_torch_archive(path: Path | str, fix: str = "re-create it with torch.save or export-model") -> None:
    """Raise ArtifactError unless the zip archive at `path` is safe to hand to torch.

    Checks: a regular, non-empty zip file whose entries all match their CRC32; every
    pickle in it (data.pkl, constants.pkl, *.debug_pkl, ...) well formed, nesting at
    most MAX_DEPTH, without reference cycles, every storage's numel x element size
    within its record and every tensor view (offset, size, stride) within its storage;
    every embedded extra/*.json nesting at most MAX_DEPTH; the TorchScript source
    (code/**.py), which libtorch compiles by recursive descent, nesting brackets at most
    MAX_DEPTH deep with at most MAX_OPERATORS_PER_STATEMENT operators a statement.
    One line naming the file.
    """
    path = Path(path)
    try:
        st = os.stat(path)
    except OSError as e:
        raise ArtifactError(f"{path}: cannot read it ({e.strerror}); {fix}") from None
    if not stat.S_ISREG(st.st_mode):
        raise ArtifactError(f"{path}: not a regular file; {fix}")
    if st.st_size == 0:
        raise ArtifactError(f"{path}: empty file (0 bytes); {fix}")
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
            if not infos:
                raise ArtifactError(f"{path}: zip archive has no entries; {fix}")
            names = [i.filename for i in infos]
            if len(set(names)) != len(names):
                raise ArtifactError(f"{path}: zip archive has duplicate entries; {fix}")
            bad = archive.testzip()  # reads every entry: CRC32 and sizes
            if bad is not None:
                raise ArtifactError(f"{path}: entry '{_show(bad)}' fails its CRC32 check; the archive is corrupt; {fix}")
            sizes = {i.filename: i.file_size for i in infos}
            for info in infos:
                name = info.filename
                if "/extra/" in name and name.endswith(".json"):
                    if info.file_size > MAX_JSON_BYTES:
                        raise ArtifactError(f"{path}: embedded '{_show(name)}' is {info.file_size} bytes, "
                                            f"more than a manifest may have; {fix}")
                    check_json_text(archive.read(info), f"{path}: embedded '{_show(name)}'", fix)
                if "/code/" in name and name.endswith(".py"):
                    if info.file_size > MAX_PICKLE_BYTES:
                        raise ArtifactError(f"{path}: source '{_show(name)}' is {info.file_size} bytes, "
                                            f"more than torchship accepts; {fix}")
                    try:
                        check_code_text(archive.read(info))
                    except _Refusal as refusal:
                        raise ArtifactError(f"{path}: source '{_show(name)}' {refusal}; {fix}") from None
                    continue
                if not (name.endswith(".pkl") or name.endswith("debug_pkl")):
                    continue
                if info.file_size > MAX_PICKLE_BYTES:
                    raise ArtifactError(f"{path}: pickle '{_show(name)}' is {info.file_size} bytes, "
                                        f"more than torchship accepts; {fix}")
                root = name[: name.index("/") + 1] if "/" in name else ""
                own_dir = (name[:-4] if name.endswith(".pkl") else name) + "/"

                def record_size(key: str, own_dir=own_dir, root=root):
                    for candidate in (own_dir + key, root + ".data/" + key):
                        if candidate in sizes:
                            return sizes[candidate]
                    return None

                try:
                    _Machine(archive.read(info), record_size, name.endswith("/traced_inputs.pkl")).run()
                except _Refusal as refusal:
                    raise ArtifactError(f"{path}: pickle '{_show(name)}' {refusal}; {fix}") from None
    except ArtifactError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError, NotImplementedError) as e:
        raise ArtifactError(f"{path}: not a valid zip archive ({_show(e)}); the file is truncated "
                            f"or corrupt; {fix}") from None
    except OSError as e:
        raise ArtifactError(f"{path}: cannot read it ({e.strerror or e}); {fix}") from None
