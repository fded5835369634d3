#include "bounds.h"

#include <zip.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "torchship/errors.h"

namespace torchship {
namespace {

// Pickles bigger than this are not what torch writes for any model torchship serves.
constexpr std::uint64_t kMaxPickleBytes = 256u << 20;
// Values on the unpickler's stack at once: a real pickle holds its nesting depth times
// a batch of 1000 appends; a flat run of a million pushes is an attack on memory.
constexpr size_t kMaxStack = 1u << 20;
// Strings are kept only as far as the checks need them (storage keys, dtype names).
constexpr size_t kKeepChars = 256;
// TorchScript source in an archive (code/**.py) is compiled by recursive descent: a
// statement with thousands of operators or brackets exhausts the stack (SIGSEGV from
// about 10,000 on an 8 MB stack). Serialised code has a handful per statement.
constexpr int kMaxOperatorsPerStatement = 1000;
constexpr size_t kMaxIndent = 1024;
// Largest element count of one tensor (2^62): beyond it numel * itemsize overflows.
constexpr __int128 kMaxElements = static_cast<__int128>(1) << 62;

struct ZipCloser {
  void operator()(zip_t* archive) const { zip_discard(archive); }
};
struct ZipFileCloser {
  void operator()(zip_file_t* file) const { zip_fclose(file); }
};

// A pickle that cannot be bounded; the caller adds the file, the entry and the fix.
struct Refusal {
  std::string message;
};
[[noreturn]] void refuse(const std::string& message) { throw Refusal{message}; }

enum class Kind : std::uint8_t { None, Bool, Int, BigInt, Float, Str, Bytes, Global, Node, Storage };
enum class NodeKind : std::uint8_t { Tuple, List, Dict, Set, Object, Tensor };

struct Value {
  Kind kind = Kind::None;
  std::int64_t i = 0;         // Int: the value; Storage: numel
  std::int64_t itemsize = 0;  // Storage
  int node = -1;              // Node: index into Machine::nodes
  std::string a, b;           // Str: a; Global: module a, name b; Storage: key a, dtype b
};

struct Node {
  NodeKind kind;
  std::vector<Value> items;  // tuples only: their elements (what the checks read)
  std::vector<int> children;  // every node directly inside this one (for the depth)
  int depth = 1;              // as built so far: never more than the true depth
};

// Element sizes of the storage classes torch pickles (torch.<Name>Storage).
std::int64_t storage_itemsize(const std::string& module, const std::string& name) {
  static const std::map<std::string, std::int64_t> kSizes = {
      {"DoubleStorage", 8},       {"FloatStorage", 4},        {"HalfStorage", 2},
      {"BFloat16Storage", 2},     {"LongStorage", 8},         {"IntStorage", 4},
      {"ShortStorage", 2},        {"CharStorage", 1},         {"ByteStorage", 1},
      {"BoolStorage", 1},         {"ComplexDoubleStorage", 16}, {"ComplexFloatStorage", 8},
      {"ComplexHalfStorage", 4},  {"QUInt8Storage", 1},       {"QInt8Storage", 1},
      {"QInt32Storage", 4},       {"QUInt4x2Storage", 1},     {"QUInt2x4Storage", 1},
      {"UInt16Storage", 2},       {"UInt32Storage", 4},       {"UInt64Storage", 8},
      {"Int8Storage", 1},         {"Int16Storage", 2},        {"Int32Storage", 4},
      {"Int64Storage", 8},        {"Float8_e5m2Storage", 1},  {"Float8_e4m3fnStorage", 1},
      {"Float8_e5m2fnuzStorage", 1}, {"Float8_e4m3fnuzStorage", 1}, {"Float8_e8m0fnuStorage", 1},
      {"UntypedStorage", 1},      {"Bits8Storage", 1},        {"Bits16Storage", 2},
  };
  if (module == "torch.storage" && name == "UntypedStorage") return 1;  // _rebuild_tensor_v3's storages
  if (module != "torch") return 0;
  const auto it = kSizes.find(name);
  return it == kSizes.end() ? 0 : it->second;
}

// Element sizes of torch dtypes as pickled (torch.<name>), for _rebuild_tensor_v3.
std::int64_t dtype_itemsize(const std::string& module, const std::string& name) {
  static const std::map<std::string, std::int64_t> kSizes = {
      {"float64", 8}, {"double", 8}, {"float32", 4}, {"float", 4}, {"float16", 2}, {"half", 2},
      {"bfloat16", 2}, {"int64", 8}, {"long", 8}, {"int32", 4}, {"int", 4}, {"int16", 2},
      {"short", 2}, {"int8", 1}, {"uint8", 1}, {"bool", 1}, {"uint16", 2}, {"uint32", 4},
      {"uint64", 8}, {"complex128", 16}, {"cdouble", 16}, {"complex64", 8}, {"cfloat", 8},
      {"complex32", 4}, {"chalf", 4}, {"float8_e5m2", 1}, {"float8_e4m3fn", 1}, {"float8_e5m2fnuz", 1},
      {"float8_e4m3fnuz", 1}, {"float8_e8m0fnu", 1}, {"quint8", 1}, {"qint8", 1}, {"qint32", 4},
      {"bits8", 1}, {"bits16", 2},
  };
  if (module != "torch") return 0;
  const auto it = kSizes.find(name);
  return it == kSizes.end() ? 0 : it->second;
}

std::string shown(const std::string& text) {
  std::string out;
  for (char c : text.substr(0, 160)) out += (c >= 32 && c < 127) ? c : '?';
  return out;
}

// The abstract unpickler: executes the opcodes of one pickle on values that only
// describe what the real unpickler would build.
class Machine {
 public:
  // `record_size(key)` is the byte length of the storage record a persistent id names,
  // or -1 when the archive has none.
  // `empty_records_ok`: a storage may name a 0-byte record (torch.jit.save writes
  // traced_inputs.pkl so: shapes only, read by libtorch only with _restore_shapes).
  template <typename RecordSize>
  Machine(const std::string& bytes, RecordSize record_size, bool empty_records_ok)
      : p_(bytes), record_size_(record_size), empty_records_ok_(empty_records_ok) {}

  void run() {
    bool stopped = false;
    while (!stopped) {
      if (pos_ >= p_.size()) refuse("ends before its STOP opcode (truncated pickle)");
      const unsigned char op = static_cast<unsigned char>(p_[pos_++]);
      stopped = step(op);
      if (stack_.size() > kMaxStack) refuse("holds more than " + std::to_string(kMaxStack) + " values at once");
      if (marks_.size() > static_cast<size_t>(kMaxNestingDepth)) too_deep();
    }
    if (stack_.size() != 1) refuse("ends with " + std::to_string(stack_.size()) + " values on its stack, not 1");
    check_depth();
  }

 private:
  const std::string& p_;
  std::function<std::int64_t(const std::string&)> record_size_;
  bool empty_records_ok_;
  size_t pos_ = 0;
  std::vector<Value> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<std::uint64_t, Value> memo_;
  std::vector<Node> nodes_;

  [[noreturn]] static void too_deep() {
    refuse("nests deeper than " + std::to_string(kMaxNestingDepth) + " levels");
  }

  const char* take(std::uint64_t n) {
    if (n > p_.size() - pos_) refuse("declares " + std::to_string(n) + " bytes at offset " + std::to_string(pos_) +
                                     " but only " + std::to_string(p_.size() - pos_) + " remain (truncated pickle)");
    const char* at = p_.data() + pos_;
    pos_ += n;
    return at;
  }
  std::uint64_t unsigned_le(size_t n) {
    const auto* at = reinterpret_cast<const unsigned char*>(take(n));
    std::uint64_t v = 0;
    for (size_t k = 0; k < n; ++k) v |= static_cast<std::uint64_t>(at[k]) << (8 * k);
    return v;
  }
  std::string line() {
    const auto end = p_.find('\n', pos_);
    if (end == std::string::npos) refuse("has a text argument without its newline (truncated pickle)");
    std::string text = p_.substr(pos_, end - pos_);
    pos_ = end + 1;
    return text;
  }

  Value pop() {
    if (stack_.empty() || (!marks_.empty() && marks_.back() == stack_.size())) {
      refuse("pops a value from an empty stack at offset " + std::to_string(pos_));
    }
    Value v = std::move(stack_.back());
    stack_.pop_back();
    return v;
  }
  Value& top() {
    if (stack_.empty()) refuse("reads an empty stack at offset " + std::to_string(pos_));
    return stack_.back();
  }
  std::vector<Value> pop_to_mark() {
    if (marks_.empty()) refuse("closes a MARK it never opened at offset " + std::to_string(pos_));
    const size_t mark = marks_.back();
    marks_.pop_back();
    std::vector<Value> items(std::make_move_iterator(stack_.begin() + static_cast<std::ptrdiff_t>(mark)),
                             std::make_move_iterator(stack_.end()));
    stack_.resize(mark);
    return items;
  }
  void push(Value v) { stack_.push_back(std::move(v)); }
  void push_int(std::int64_t i) {
    Value v;
    v.kind = Kind::Int;
    v.i = i;
    push(std::move(v));
  }
  void push_str(Kind kind, const char* at, std::uint64_t n) {
    Value v;
    v.kind = kind;
    v.a.assign(at, static_cast<size_t>(std::min<std::uint64_t>(n, kKeepChars)));
    push(std::move(v));
  }
  void push_sized(Kind kind, size_t width) {
    const std::uint64_t n = unsigned_le(width);
    push_str(kind, take(n), n);
  }
  Value new_node(NodeKind kind, std::vector<Value> items = {}) {
    Node node{kind, {}, {}, 1};
    for (const auto& item : items) {
      if (item.node >= 0) {
        node.children.push_back(item.node);
        node.depth = std::max(node.depth, nodes_[static_cast<size_t>(item.node)].depth + 1);
      }
    }
    if (node.depth > kMaxNestingDepth) too_deep();
    if (kind == NodeKind::Tuple) node.items = std::move(items);
    nodes_.push_back(std::move(node));
    Value v;
    v.kind = Kind::Node;
    v.node = static_cast<int>(nodes_.size() - 1);
    return v;
  }
  // Adds `items` inside the container on top of the stack (APPEND, SETITEM, BUILD, ...).
  void add_to_top(const std::vector<Value>& items, const char* opcode) {
    const Value& target = top();
    if (target.kind != Kind::Node) refuse(std::string(opcode) + " into a value that is not a container");
    Node& container = nodes_[static_cast<size_t>(target.node)];
    for (const auto& item : items) {
      if (item.node < 0) continue;
      container.children.push_back(item.node);
      container.depth = std::max(container.depth, nodes_[static_cast<size_t>(item.node)].depth + 1);
      if (container.depth > kMaxNestingDepth) too_deep();
    }
  }
  const Node& tuple_of(const Value& v, const char* what) {
    if (v.kind != Kind::Node || nodes_[static_cast<size_t>(v.node)].kind != NodeKind::Tuple) {
      refuse(std::string(what) + " is not a tuple");
    }
    return nodes_[static_cast<size_t>(v.node)];
  }
  static std::int64_t small_int(const Value& v, const char* what) {
    if (v.kind == Kind::Bool) return v.i;
    if (v.kind != Kind::Int) refuse(std::string(what) + " is not an integer that fits 64 bits");
    return v.i;
  }

  Value persistent_storage(const Value& pid) {
    const Node& tuple = tuple_of(pid, "a persistent id");
    const auto& it = tuple.items;
    if (it.size() < 5 || it[0].kind != Kind::Str || it[0].a != "storage") {
      refuse("has a persistent id other than ('storage', type, key, location, numel)");
    }
    if (it[1].kind != Kind::Global) refuse("has a storage whose type is not a class");
    const std::int64_t itemsize = storage_itemsize(it[1].a, it[1].b);
    if (itemsize == 0) refuse("has a storage of unknown type " + shown(it[1].a + "." + it[1].b));
    if (it[2].kind != Kind::Str) refuse("has a storage whose key is not a string");
    const std::int64_t numel = small_int(it[4], "a storage's element count");
    if (numel < 0) refuse("declares storage '" + shown(it[2].a) + "' with a negative size");
    const std::int64_t have = record_size_(it[2].a);
    if (have < 0) refuse("names storage record '" + shown(it[2].a) + "', which the archive does not have");
    const __int128 need = static_cast<__int128>(numel) * itemsize;
    if (need > have && !(have == 0 && empty_records_ok_)) {
      refuse("declares storage '" + shown(it[2].a) + "' of " + std::to_string(numel) + " x " +
             std::to_string(itemsize) + " bytes but its record holds " + std::to_string(have) + " bytes");
    }
    Value v;
    v.kind = Kind::Storage;
    v.i = numel;
    v.itemsize = itemsize;
    v.a = it[2].a;
    return v;
  }

  // _rebuild_tensor_v2(storage, offset, size, stride, ...): the view must stay inside.
  void check_tensor_view(const Node& args, const std::string& function, std::int64_t element_size = 0) {
    const auto& it = args.items;
    if (it.size() < 4) refuse(function + " with " + std::to_string(it.size()) + " arguments, not at least 4");
    if (it[0].kind != Kind::Storage) refuse(function + " of something that is not a storage");
    const Value& storage = it[0];
    const std::int64_t offset = small_int(it[1], "a tensor's storage offset");
    const Node& sizes = tuple_of(it[2], "a tensor's size");
    const Node& strides = tuple_of(it[3], "a tensor's stride");
    if (sizes.items.size() != strides.items.size()) {
      refuse("has a tensor with " + std::to_string(sizes.items.size()) + " sizes but " +
             std::to_string(strides.items.size()) + " strides");
    }
    if (offset < 0) refuse("has a tensor with a negative storage offset");
    __int128 elements = 1, extent = 1;
    bool empty = false;
    for (size_t d = 0; d < sizes.items.size(); ++d) {
      const std::int64_t size = small_int(sizes.items[d], "a tensor's size");
      const std::int64_t stride = small_int(strides.items[d], "a tensor's stride");
      if (size < 0 || stride < 0) refuse("has a tensor with a negative size or stride");
      if (size == 0) empty = true;
      elements *= size == 0 ? 1 : size;
      if (elements > kMaxElements) refuse("has a tensor of more than 2^62 elements");
      extent += static_cast<__int128>(size == 0 ? 0 : size - 1) * stride;
      if (extent > kMaxElements) refuse("has a tensor whose strides reach past 2^62 elements");
    }
    // In bytes: _rebuild_tensor_v3 views an untyped storage as another dtype.
    const std::int64_t itemsize = element_size > 0 ? element_size : storage.itemsize;
    const __int128 end = (static_cast<__int128>(offset) + (empty ? 0 : extent)) * itemsize;
    const __int128 holds = static_cast<__int128>(storage.i) * storage.itemsize;
    if (end > holds) {
      refuse("has a tensor whose view (offset " + std::to_string(offset) + ", extent " +
             std::to_string(static_cast<long long>(empty ? 0 : extent)) + " elements) reaches byte " +
             std::to_string(static_cast<long long>(end)) + " of storage '" + shown(storage.a) + "', which holds " +
             std::to_string(static_cast<long long>(holds)) + " bytes");
    }
  }

  Value reduce(const Value& callable, const Value& args) {
    const Node& tuple = tuple_of(args, "REDUCE's argument");
    if (callable.kind == Kind::Global && callable.a == "torch._utils") {
      const std::string& name = callable.b;
      if (name == "_rebuild_tensor_v3") {  // (storage, offset, size, stride, grad, hooks, dtype, ...)
        if (tuple.items.size() < 7 || tuple.items[6].kind != Kind::Global) refuse(name + " without a dtype");
        const std::int64_t size = dtype_itemsize(tuple.items[6].a, tuple.items[6].b);
        if (size == 0) refuse("has a tensor of unknown dtype " + shown(tuple.items[6].a + "." + tuple.items[6].b));
        check_tensor_view(tuple, name, size);
        return new_node(NodeKind::Tensor, {args});
      }
      if (name == "_rebuild_tensor_v2" || name == "_rebuild_tensor" || name == "_rebuild_qtensor") {
        check_tensor_view(tuple, name);
        return new_node(NodeKind::Tensor, {args});
      }
      if (name.rfind("_rebuild", 0) == 0 && name.find("parameter") == std::string::npos) {
        for (const auto& item : tuple.items) {
          if (item.kind == Kind::Storage) refuse("builds a tensor with torch._utils." + shown(name) + ", which cannot be bounded");
        }
      }
    }
    return new_node(NodeKind::Object, {args, callable});
  }

  void memo_put(std::uint64_t index) { memo_[index] = top(); }
  void memo_get(std::uint64_t index) {
    const auto it = memo_.find(index);
    if (it == memo_.end()) refuse("reads memo entry " + std::to_string(index) + ", which was never stored");
    push(it->second);
  }

  // Executes one opcode; returns true at STOP.
  bool step(unsigned char op) {
    switch (op) {
      case 0x80: take(1); return false;                     // PROTO
      case 0x95: take(8); return false;                     // FRAME
      case '.': return true;                                // STOP
      case '(': marks_.push_back(stack_.size()); return false;  // MARK
      case '0':                                             // POP
        if (!marks_.empty() && marks_.back() == stack_.size()) {
          marks_.pop_back();
        } else {
          pop();
        }
        return false;
      case '1': pop_to_mark(); return false;                // POP_MARK
      case '2': push(top()); return false;                  // DUP
      case 'N': push(Value{}); return false;                // NONE
      case 0x88: case 0x89: {                               // NEWTRUE, NEWFALSE
        Value v;
        v.kind = Kind::Bool;
        v.i = op == 0x88;
        push(std::move(v));
        return false;
      }
      case 'J': push_int(static_cast<std::int32_t>(static_cast<std::uint32_t>(unsigned_le(4)))); return false;
      case 'K': push_int(static_cast<std::int64_t>(unsigned_le(1))); return false;
      case 'M': push_int(static_cast<std::int64_t>(unsigned_le(2))); return false;
      case 0x8a: case 0x8b: {                               // LONG1, LONG4
        const std::uint64_t n = unsigned_le(op == 0x8a ? 1 : 4);
        const auto* at = reinterpret_cast<const unsigned char*>(take(n));
        if (n > 8) {
          Value v;
          v.kind = Kind::BigInt;
          push(std::move(v));
          return false;
        }
        std::uint64_t u = 0;
        for (std::uint64_t k = 0; k < n; ++k) u |= static_cast<std::uint64_t>(at[k]) << (8 * k);
        if (n > 0 && n < 8 && (at[n - 1] & 0x80)) u |= ~std::uint64_t{0} << (8 * n);  // sign-extend
        push_int(static_cast<std::int64_t>(u));
        return false;
      }
      case 'I': case 'L': {                                 // INT, LONG (text)
        std::string text = line();
        if (op == 'I' && (text == "00" || text == "01")) {
          Value v;
          v.kind = Kind::Bool;
          v.i = text == "01";
          push(std::move(v));
          return false;
        }
        if (!text.empty() && text.back() == 'L') text.pop_back();
        errno = 0;
        char* end = nullptr;
        const long long i = std::strtoll(text.c_str(), &end, 10);
        if (text.empty() || *end != '\0') refuse("has a malformed integer '" + shown(text) + "'");
        if (errno == ERANGE) {
          Value v;
          v.kind = Kind::BigInt;
          push(std::move(v));
        } else {
          push_int(i);
        }
        return false;
      }
      case 'F': case 'G': {                                 // FLOAT, BINFLOAT
        if (op == 'F') line(); else take(8);
        Value v;
        v.kind = Kind::Float;
        push(std::move(v));
        return false;
      }
      case 'X': push_sized(Kind::Str, 4); return false;     // BINUNICODE
      case 0x8c: push_sized(Kind::Str, 1); return false;    // SHORT_BINUNICODE
      case 0x8d: push_sized(Kind::Str, 8); return false;    // BINUNICODE8
      case 'T': push_sized(Kind::Str, 4); return false;     // BINSTRING
      case 'U': push_sized(Kind::Str, 1); return false;     // SHORT_BINSTRING
      case 'B': push_sized(Kind::Bytes, 4); return false;   // BINBYTES
      case 'C': push_sized(Kind::Bytes, 1); return false;   // SHORT_BINBYTES
      case 0x8e: push_sized(Kind::Bytes, 8); return false;  // BINBYTES8
      case 0x96: push_sized(Kind::Bytes, 8); return false;  // BYTEARRAY8
      case 'S': case 'V': {                                 // STRING, UNICODE (text)
        const std::string text = line();
        push_str(Kind::Str, text.data(), text.size());
        return false;
      }
      case 'c': {                                           // GLOBAL
        Value v;
        v.kind = Kind::Global;
        v.a = line().substr(0, kKeepChars);
        v.b = line().substr(0, kKeepChars);
        push(std::move(v));
        return false;
      }
      case 0x93: {                                          // STACK_GLOBAL
        Value name = pop(), module = pop();
        if (name.kind != Kind::Str || module.kind != Kind::Str) refuse("has a STACK_GLOBAL whose names are not strings");
        Value v;
        v.kind = Kind::Global;
        v.a = module.a;
        v.b = name.a;
        push(std::move(v));
        return false;
      }
      case ')': push(new_node(NodeKind::Tuple)); return false;
      case 't': push(new_node(NodeKind::Tuple, pop_to_mark())); return false;
      case 0x85: case 0x86: case 0x87: {                    // TUPLE1..3
        const size_t n = op - 0x84u;
        std::vector<Value> items(n);
        for (size_t k = n; k-- > 0;) items[k] = pop();
        push(new_node(NodeKind::Tuple, std::move(items)));
        return false;
      }
      case ']': push(new_node(NodeKind::List)); return false;
      case 'l': push(new_node(NodeKind::List, pop_to_mark())); return false;
      case '}': push(new_node(NodeKind::Dict)); return false;
      case 'd': push(new_node(NodeKind::Dict, pop_to_mark())); return false;
      case 0x8f: push(new_node(NodeKind::Set)); return false;
      case 0x91: push(new_node(NodeKind::Set, pop_to_mark())); return false;
      case 'a': { Value x = pop(); add_to_top({x}, "APPEND"); return false; }
      case 'e': { auto xs = pop_to_mark(); add_to_top(xs, "APPENDS"); return false; }
      case 's': { Value v = pop(), k = pop(); add_to_top({k, v}, "SETITEM"); return false; }
      case 'u': { auto xs = pop_to_mark(); add_to_top(xs, "SETITEMS"); return false; }
      case 0x90: { auto xs = pop_to_mark(); add_to_top(xs, "ADDITEMS"); return false; }
      case 'b': { Value state = pop(); add_to_top({state}, "BUILD"); return false; }
      case 'R': { Value args = pop(), callable = pop(); push(reduce(callable, args)); return false; }
      case 0x81: {                                          // NEWOBJ
        Value args = pop(), cls = pop();
        Value v = new_node(NodeKind::Object, {cls, args});
        push(std::move(v));
        return false;
      }
      case 0x92: {                                          // NEWOBJ_EX
        Value kwargs = pop(), args = pop(), cls = pop();
        push(new_node(NodeKind::Object, {cls, args, kwargs}));
        return false;
      }
      case 'Q': { Value pid = pop(); push(persistent_storage(pid)); return false; }  // BINPERSID
      case 'p': memo_put(std::strtoull(line().c_str(), nullptr, 10)); return false;  // PUT
      case 'q': memo_put(unsigned_le(1)); return false;     // BINPUT
      case 'r': memo_put(unsigned_le(4)); return false;     // LONG_BINPUT
      case 0x94: memo_put(memo_.size()); return false;      // MEMOIZE
      case 'g': memo_get(std::strtoull(line().c_str(), nullptr, 10)); return false;  // GET
      case 'h': memo_get(unsigned_le(1)); return false;     // BINGET
      case 'j': memo_get(unsigned_le(4)); return false;     // LONG_BINGET
      default: {
        char hex[8];
        std::snprintf(hex, sizeof hex, "0x%02x", op);
        refuse(std::string("uses pickle opcode ") + hex + " at offset " + std::to_string(pos_ - 1) +
               ", which torch's unpickler does not accept");
      }
    }
  }

  // Longest chain of containers inside containers, without recursion; a cycle is refused.
  void check_depth() {
    std::vector<int> depth(nodes_.size(), 0);  // 0 unvisited, -1 on the path, else depth
    std::vector<std::pair<int, size_t>> path;  // (node, next child)
    for (size_t root = 0; root < nodes_.size(); ++root) {
      if (depth[root] != 0) continue;
      path.emplace_back(static_cast<int>(root), 0);
      depth[root] = -1;
      while (!path.empty()) {
        auto& [node, next] = path.back();
        const auto& children = nodes_[static_cast<size_t>(node)].children;
        if (next < children.size()) {
          const int child = children[next++];
          if (depth[static_cast<size_t>(child)] == -1) refuse("contains a reference cycle");
          if (depth[static_cast<size_t>(child)] == 0) {
            depth[static_cast<size_t>(child)] = -1;
            path.emplace_back(child, 0);
          }
          continue;
        }
        int d = 1;
        for (const int child : children) d = std::max(d, depth[static_cast<size_t>(child)] + 1);
        if (d > kMaxNestingDepth) too_deep();
        depth[static_cast<size_t>(node)] = d;
        path.pop_back();
      }
    }
  }
};

bool is_operator_char(char c) { return std::strchr("+-*/%&|^~<>=!@", c) != nullptr && c != '\0'; }

// Bracket depth, operators per statement and indentation of TorchScript source.
void check_code_bounds(const std::string& text) {
  int depth = 0, operators = 0;
  size_t line = 1;
  bool line_start = true;
  size_t indent = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (line_start) {
      if (c == ' ' || c == '\t') {
        if (++indent > kMaxIndent) refuse("indents line " + std::to_string(line) + " deeper than " + std::to_string(kMaxIndent) + " columns");
        continue;
      }
      line_start = false;
    }
    if (c == '\n') {
      ++line;
      line_start = true;
      indent = 0;
      if (depth == 0) operators = 0;  // a statement ends at a newline outside brackets
      continue;
    }
    if (c == '#') {  // comment to the end of the line
      while (i + 1 < text.size() && text[i + 1] != '\n') ++i;
      continue;
    }
    if (c == '"' || c == '\'') {  // a string literal, triple-quoted or not
      const bool triple = text.compare(i, 3, std::string(3, c)) == 0;
      const std::string close = triple ? std::string(3, c) : std::string(1, c);
      size_t j = i + close.size();
      while (j < text.size() && text.compare(j, close.size(), close) != 0) {
        if (text[j] == '\\') ++j;
        if (j < text.size() && text[j] == '\n') ++line;
        ++j;
      }
      i = std::min(text.size(), j + close.size()) - 1;
      continue;
    }
    if (c == '(' || c == '[' || c == '{') {
      if (++depth > kMaxNestingDepth) {
        refuse("nests brackets deeper than " + std::to_string(kMaxNestingDepth) + " levels on line " + std::to_string(line));
      }
    } else if (c == ')' || c == ']' || c == '}') {
      if (depth > 0) --depth;
    } else if (c == ';' && depth == 0) {
      operators = 0;
    } else if (is_operator_char(c) || ((c == 'a' || c == 'o' || c == 'n' || c == 'i' || c == 'e') &&
                                       (i == 0 || !(std::isalnum(static_cast<unsigned char>(text[i - 1])) || text[i - 1] == '_')))) {
      bool counted = is_operator_char(c);
      if (!counted) {  // and, or, not, if, else, is, in: keywords that chain like operators
        size_t j = i;
        while (j < text.size() && (std::isalnum(static_cast<unsigned char>(text[j])) || text[j] == '_')) ++j;
        const std::string word = text.substr(i, j - i);
        counted = word == "and" || word == "or" || word == "not" || word == "if" || word == "else" ||
                  word == "is" || word == "in";
        i = j - 1;
      }
      if (counted && ++operators > kMaxOperatorsPerStatement) {
        refuse("has a statement with more than " + std::to_string(kMaxOperatorsPerStatement) +
               " operators ending on line " + std::to_string(line));
      }
    }
  }
}

std::string read_entry(zip_t* archive, zip_uint64_t index, std::uint64_t size, const std::string& where) {
  std::unique_ptr<zip_file_t, ZipFileCloser> file(zip_fopen_index(archive, index, 0));
  if (!file) throw ArtifactError(where + " cannot be opened (" + zip_strerror(archive) + ")");
  std::string bytes(static_cast<size_t>(size), '\0');
  std::uint64_t done = 0;
  while (done < size) {
    const zip_int64_t got = zip_fread(file.get(), bytes.data() + done, size - done);
    if (got <= 0) throw ArtifactError(where + " cannot be read (" + zip_strerror(archive) + ")");
    done += static_cast<std::uint64_t>(got);
  }
  return bytes;
}

bool ends_with(const std::string& text, const std::string& suffix) {
  return text.size() >= suffix.size() && text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

void check_json_bounds(const std::string& text, const std::string& what, const std::string& fix) {
  if (text.size() > kMaxJsonBytes) {
    throw ArtifactError(what + " is " + std::to_string(text.size()) + " bytes, more than the " +
                    std::to_string(kMaxJsonBytes) + " a manifest may have; " + fix);
  }
  int depth = 0;
  bool in_string = false, escaped = false;
  for (const char c : text) {
    if (in_string) {
      if (escaped) escaped = false;
      else if (c == '\\') escaped = true;
      else if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > kMaxNestingDepth) {
        throw ArtifactError(what + " nests deeper than " + std::to_string(kMaxNestingDepth) + " levels; " + fix);
      }
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
}

void check_torch_archive(const std::string& path, const std::string& fix) {
  int code = 0;
  std::unique_ptr<zip_t, ZipCloser> archive(zip_open(path.c_str(), ZIP_RDONLY, &code));
  if (!archive) throw ArtifactError(path + ": not a zip archive torch wrote; " + fix);
  const zip_int64_t entries = zip_get_num_entries(archive.get(), 0);
  std::unordered_map<std::string, std::uint64_t> sizes;
  std::vector<std::pair<zip_uint64_t, std::string>> pickles, jsons, sources;
  for (zip_int64_t i = 0; i < entries; ++i) {
    zip_stat_t st;
    zip_stat_init(&st);
    if (zip_stat_index(archive.get(), static_cast<zip_uint64_t>(i), ZIP_FL_ENC_RAW, &st) != 0 ||
        !(st.valid & ZIP_STAT_NAME) || !(st.valid & ZIP_STAT_SIZE)) {
      throw ArtifactError(path + ": entry #" + std::to_string(i) + " has no name or size; the archive is corrupt; " + fix);
    }
    const std::string name = st.name;
    sizes[name] = st.size;
    if (ends_with(name, ".pkl") || ends_with(name, "debug_pkl")) {
      if (st.size > kMaxPickleBytes) {
        throw ArtifactError(path + ": pickle '" + shown(name) + "' is " + std::to_string(st.size) +
                        " bytes, more than torchship accepts; " + fix);
      }
      pickles.emplace_back(static_cast<zip_uint64_t>(i), name);
    } else if (name.find("/extra/") != std::string::npos && ends_with(name, ".json")) {
      if (st.size > kMaxJsonBytes) {
        throw ArtifactError(path + ": embedded '" + shown(name) + "' is " + std::to_string(st.size) +
                        " bytes, more than a manifest may have; " + fix);
      }
      jsons.emplace_back(static_cast<zip_uint64_t>(i), name);
    } else if (name.find("/code/") != std::string::npos && ends_with(name, ".py")) {
      if (st.size > kMaxPickleBytes) {
        throw ArtifactError(path + ": source '" + shown(name) + "' is " + std::to_string(st.size) +
                        " bytes, more than torchship accepts; " + fix);
      }
      sources.emplace_back(static_cast<zip_uint64_t>(i), name);
    }
  }
  for (const auto& [index, name] : jsons) {
    const std::string where = path + ": embedded '" + shown(name) + "'";
    check_json_bounds(read_entry(archive.get(), index, sizes[name], where), where, fix);
  }
  for (const auto& [index, name] : sources) {
    const std::string where = path + ": source '" + shown(name) + "'";
    try {
      check_code_bounds(read_entry(archive.get(), index, sizes[name], where));
    } catch (const Refusal& refusal) {
      throw ArtifactError(where + " " + refusal.message + "; " + fix);
    }
  }
  for (const auto& [index, name] : pickles) {
    const std::string where = path + ": pickle '" + shown(name) + "'";
    const std::string bytes = read_entry(archive.get(), index, sizes[name], where);
    // Storages of ROOT/data.pkl live in ROOT/data/KEY (libtorch's readArchiveAndTensors),
    // or in ROOT/.data/KEY when the archive shares storages between its pickles.
    const auto slash = name.find('/');
    const std::string root = slash == std::string::npos ? "" : name.substr(0, slash + 1);
    const std::string own_dir =
        (ends_with(name, ".pkl") ? name.substr(0, name.size() - 4) : name) + "/";
    const auto record_size = [&](const std::string& key) -> std::int64_t {
      for (const std::string& candidate : {own_dir + key, root + ".data/" + key}) {
        const auto it = sizes.find(candidate);
        if (it != sizes.end()) return static_cast<std::int64_t>(it->second);
      }
      return -1;
    };
    try {
      Machine machine(bytes, record_size, ends_with(name, "/traced_inputs.pkl"));
      machine.run();
    } catch (const Refusal& refusal) {
      throw ArtifactError(where + " " + refusal.message + "; " + fix);
    }
  }
}

}  // namespace torchship
