# Plain data on the wire, shared by the test process, the candidate process and Rust
# (`plain.rs`). Only exact builtin types travel: None, bool, int (any size, as hex), float
# (8 bytes), str, bytes, list, tuple, set, frozenset, dict. Anything else is refused when
# encoding, except on the candidate's side (`loose`), where a subclass of one of these (a
# namedtuple, Counter, defaultdict, OrderedDict, IntEnum ...), a bytearray and a NumPy scalar
# travel as their plain value, read with the base type's own methods: what they equal in one
# process (`Point(1, 2) == (1, 2)`, `Counter("ab") == {"a": 1, "b": 1}`), and none of their
# methods (`__eq__` included) crosses. Decoding builds fresh builtin objects only, so nothing
# with behaviour can cross. Layout: one tag byte, then `i<hex>;`, `f<8 bytes LE>`,
# `s<len>:<utf-8>`, `b<len>:<bytes>`, `l|t|S|Z|d<count>:<items>` (Z: frozenset; dict: key,
# value, key, value ...).
import struct as _struct


class PlainError(ValueError):
    pass


_MAX_DEPTH = 100


def _enc(v, put, depth, loose):
    t = type(v)
    if depth > _MAX_DEPTH:
        raise PlainError("value nested too deeply")
    if v is None:
        put(b"N")
    elif t is bool:
        put(b"T" if v else b"F")
    elif t is int:
        put(b"i%x;" % v)
    elif t is float:
        put(b"f" + _struct.pack("<d", v))
    elif t is str:
        data = v.encode("utf-8", "surrogatepass")
        put(b"s%d:" % len(data))
        put(data)
    elif t is bytes:
        put(b"b%d:" % len(v))
        put(v)
    elif t is list or t is tuple or t is set or t is frozenset:
        put((b"l" if t is list else b"t" if t is tuple else b"S" if t is set else b"Z") + b"%d:" % len(v))
        for x in v:
            _enc(x, put, depth + 1, loose)
    elif t is dict:
        put(b"d%d:" % len(v))
        for k, x in v.items():
            _enc(k, put, depth + 1, loose)
            _enc(x, put, depth + 1, loose)
    elif loose and t.__module__ == "numpy" and getattr(v, "ndim", None) == 0 and hasattr(v, "item"):
        # A NumPy scalar (np.int64, np.float64, np.bool_) from the candidate's side only: its
        # plain value is what the test would have compared against.
        _enc(v.item(), put, depth, False)
    elif loose and isinstance(v, _BASES):
        # A subclass of a plain type (or a bytearray), from the candidate's side only: its value
        # as the base type holds it, an object of that exact type.
        try:
            base = _base_value(v)
        except Exception as e:  # noqa: BLE001 - a subclass that breaks its base type's methods
            raise PlainError(f"a value of type {t.__name__} is not plain data ({type(e).__name__})") from None
        _enc(base, put, depth, loose)
    else:
        raise PlainError(f"a value of type {t.__name__} is not plain data")


_BASES = (int, float, str, bytes, bytearray, list, tuple, dict, set, frozenset)


def _base_value(v):
    if isinstance(v, int):  # bool is final: never here
        return int.__index__(v)
    if isinstance(v, float):
        return float.__float__(v)
    if isinstance(v, str):
        return str.__str__(v)
    if isinstance(v, (bytes, bytearray)):
        return bytes(memoryview(v))
    if isinstance(v, list):
        return list.copy(v)
    if isinstance(v, tuple):
        return tuple.__getitem__(v, slice(None))
    if isinstance(v, dict):
        return dict(dict.items(v))
    if isinstance(v, frozenset):
        return frozenset(frozenset.__iter__(v))
    return set(set.__iter__(v))


def encode(v, loose=False):
    parts = []
    _enc(v, parts.append, 0, loose)
    return b"".join(parts)


def _count(b, i, sep):
    j = b.index(sep, i)
    digits = b[i:j]
    if not digits.isdigit() or len(digits) > 12:
        raise PlainError("bad length")
    return int(digits), j + 1


def _dec(b, i, depth):
    if depth > _MAX_DEPTH:
        raise PlainError("value nested too deeply")
    t = b[i]
    i += 1
    if t == 78:  # N
        return None, i
    if t == 84:  # T
        return True, i
    if t == 70:  # F
        return False, i
    if t == 105:  # i
        j = b.index(b";", i)
        digits = b[i:j]
        body = digits[1:] if digits[:1] == b"-" else digits
        if not body or body.strip(b"0123456789abcdef"):
            raise PlainError("bad int")
        return int(digits, 16), j + 1
    if t == 102:  # f
        if i + 8 > len(b):
            raise PlainError("truncated float")
        return _struct.unpack_from("<d", b, i)[0], i + 8
    if t == 115 or t == 98:  # s, b
        n, i = _count(b, i, b":")
        if i + n > len(b):
            raise PlainError("truncated data")
        data = bytes(b[i:i + n])
        return (data.decode("utf-8", "surrogatepass") if t == 115 else data), i + n
    if t in (108, 116, 83, 90, 100):  # l, t, S, Z, d
        n, i = _count(b, i, b":")
        if n > len(b) - i:  # every item takes at least one byte
            raise PlainError("bad count")
        if t == 100:
            out = {}
            for _ in range(n):
                k, i = _dec(b, i, depth + 1)
                v, i = _dec(b, i, depth + 1)
                try:
                    out[k] = v
                except TypeError:
                    raise PlainError("unhashable key") from None
            return out, i
        items = []
        for _ in range(n):
            v, i = _dec(b, i, depth + 1)
            items.append(v)
        if t == 108:
            return items, i
        if t == 116:
            return tuple(items), i
        try:
            return (set(items) if t == 83 else frozenset(items)), i
        except TypeError:
            raise PlainError("unhashable set item") from None
    raise PlainError("bad tag")


def decode(b):
    try:
        v, i = _dec(b, 0, 0)
    except (IndexError, ValueError, UnicodeDecodeError, RecursionError) as e:
        raise PlainError(f"malformed plain data ({type(e).__name__})") from None
    if i != len(b):
        raise PlainError("trailing bytes after plain data")
    return v


def send_frame(fd, data, write):
    data = _struct.pack("<Q", len(data)) + data
    view = memoryview(data)
    while view:
        view = view[write(fd, view):]


def recv_frame(fd, read, limit):
    def exact(n):
        parts, got = [], 0
        while got < n:
            chunk = read(fd, min(n - got, 1 << 20))
            if not chunk:
                return None
            parts.append(chunk)
            got += len(chunk)
        return b"".join(parts)

    head = exact(8)
    if head is None:
        return None
    (n,) = _struct.unpack("<Q", head)
    if n > limit:
        raise PlainError(f"frame of {n} bytes over the limit")
    return exact(n)
