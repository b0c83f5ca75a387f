"""vane's guest-side wrapper, compiled into the interpreter snapshot.

vane_entry.c imports this module in vane_init (so its imports are part of the
snapshot) and calls run() once per instance. run() reads one JSON request from
stdin and writes one response to stdout, after RESPONSE_MARKER; everything the
user's code prints goes to stderr, which the host sends to the job's logs.

Requests:
  {"op": "run", "module": M, "args": {...}, "env": {...}}
      imports module M from /script and calls its main with the parameters it
      declares; the response is {"result": ...} or {"error": {name, message,
      stack}}.
  {"op": "compile", "source": S, "filename": F}
      the response is {"pyc": <base64 .pyc>, "imports": [{"module", "names"}]}
      or {"error": ...} for a syntax error.
  {"op": "signature", "source": S}
      the response is {"params": [...], "aliases": {...}} describing main's
      parameters (see runtime/python/signature.go), or {"error": ...}.
"""

import ast
import base64
import collections
import datetime
import decimal
import functools
import importlib
import importlib.machinery
import importlib.util
import inspect
import io
import itertools
import json
import marshal
import math
import os
import random
import re
import string
import sys
import time
import traceback
import typing
import uuid

import vane_net  # noqa: F401  (patches socket: a job's connections go through vane)
import ssl  # noqa: F401  (vane's: TLS made in the host)
# What scripts use to reach other systems, imported here so that the
# snapshot holds it: importing urllib.request in a job took 60-80 ms
# (its modules' unmarshalling and their regular expressions).
import http.client  # noqa: F401
import urllib.request  # noqa: F401

RESPONSE_MARKER = b"\n\x00vane-response\x00"

_FLOAT_SPECIAL = (math.inf, -math.inf)


def _jsonable(value):
    """Returns value with NaN/inf as None, bytes as base64, dates as ISO text."""
    if isinstance(value, float):
        if value != value or value in _FLOAT_SPECIAL:
            return None
        return value
    if value is None or isinstance(value, (str, int, bool)):
        return value
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if not isinstance(k, (str, int, float, bool)) and k is not None:
                k = str(k)
            out[k] = _jsonable(v)
        return out
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value) if value.is_finite() else None
    return value


def _error(exc):
    """The failed job's result; the stack leaves out the wrapper's and
    importlib's frames, so it starts at the user's code."""
    frames = [
        f
        for f in traceback.extract_tb(exc.__traceback__)
        if f.filename != _error.__code__.co_filename and not f.filename.startswith("<frozen importlib")
    ]
    stack = "".join(traceback.format_exception_only(type(exc), exc))
    if frames:
        stack = "Traceback (most recent call last):\n" + "".join(traceback.format_list(frames)) + stack
    return {"error": {"name": type(exc).__name__, "message": str(exc), "stack": stack}}


def _respond(response):
    try:
        data = json.dumps(response, separators=(",", ":"), default=str, allow_nan=False)
    except Exception as exc:  # a result json cannot encode
        data = json.dumps(_error(exc), separators=(",", ":"))
    try:
        sys.stderr.flush()
    except Exception:
        pass
    out = sys.__stdout__.buffer
    out.write(RESPONSE_MARKER)
    out.write(data.encode("utf-8", "surrogatepass"))
    out.flush()


def _is_datetime(annotation):
    return annotation is datetime.datetime or annotation == "datetime" or annotation == "datetime.datetime"


def _is_date(annotation):
    return annotation is datetime.date or annotation == "date" or annotation == "datetime.date"


def _is_bytes(annotation):
    return annotation is bytes or annotation == "bytes"


def _unwrap_optional(annotation):
    args = getattr(annotation, "__args__", None)
    if args and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        if len(rest) == 1:
            return rest[0]
    return annotation


def _convert_arg(annotation, value):
    """Turns a JSON value into what the parameter's annotation asks for."""
    if value is None or annotation is inspect.Parameter.empty:
        return value
    annotation = _unwrap_optional(annotation)
    if isinstance(value, str):
        if _is_datetime(annotation):
            return datetime.datetime.fromisoformat(value.replace("Z", "+00:00") if value.endswith("Z") else value)
        if _is_date(annotation):
            return datetime.date.fromisoformat(value[:10])
        if _is_bytes(annotation):
            return base64.b64decode(value)
    if annotation is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def _call_args(main, args):
    """Builds main's keyword arguments from the job's args: the parameters it
    declares (keys that are not parameters are ignored; a **kwargs parameter
    gets every key)."""
    sig = inspect.signature(main)
    params = sig.parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        kwargs = dict(args)
        for name, p in params.items():
            if name in kwargs and p.kind is not inspect.Parameter.VAR_KEYWORD:
                kwargs[name] = _convert_arg(p.annotation, kwargs[name])
        return [], kwargs
    positional, kwargs = [], {}
    for name, p in params.items():
        if p.kind is inspect.Parameter.VAR_POSITIONAL:
            continue
        if name in args and args[name] != "<function call>":
            value = _convert_arg(p.annotation, args[name])
        elif p.default is not inspect.Parameter.empty:
            continue
        else:
            value = None
        if p.kind is inspect.Parameter.POSITIONAL_ONLY:
            positional.append(value)
        else:
            kwargs[name] = value
    return positional, kwargs


def _run_job(req):
    os.environ.update(req.get("env") or {})
    if "random" in sys.modules:
        random.seed()
    importlib.invalidate_caches()
    module = importlib.import_module(req["module"])
    main = getattr(module, "main", None)
    if main is None or not callable(main):
        raise NameError("the script has no main function")
    positional, kwargs = _call_args(main, req.get("args") or {})
    result = main(*positional, **kwargs)
    if inspect.iscoroutine(result):
        result = _run_coroutine(result)
    return {"result": _jsonable(result)}


def _run_coroutine(coro):
    """Runs an async main on an event loop that needs no self-pipe (WASI has
    no socketpair): it waits in select() on no descriptors, i.e. sleeps."""
    import asyncio
    import asyncio.selector_events
    import selectors
    import socket

    class _Loop(asyncio.selector_events.BaseSelectorEventLoop):
        def _make_self_pipe(self):
            self._ssock = self._csock = None

        def _close_self_pipe(self):
            pass

        def _write_to_self(self):
            pass

        async def getaddrinfo(self, host, port, *, family=0, type=0, proto=0, flags=0):
            # asyncio asks a thread pool, which WASI has not; vane's
            # getaddrinfo answers at once (vane resolves when connecting).
            return socket.getaddrinfo(host, port, family, type, proto, flags)

    loop = _Loop(selectors.SelectSelector())
    asyncio.set_event_loop(loop)
    try:
        return loop.run_until_complete(coro)
    finally:
        asyncio.set_event_loop(None)
        loop.close()


# --- save-time analysis ----------------------------------------------------


_WORKSPACE_ROOTS = ("f", "u", "g")


def _classify(module):
    """Says where an absolute import comes from: "workspace" (another script,
    by path), "stdlib", "package" (the operator's /packages) or "missing"."""
    top = module.split(".")[0]
    if top in _WORKSPACE_ROOTS:
        return "workspace"
    if top in sys.stdlib_module_names or top in sys.builtin_module_names:
        return "stdlib"
    try:
        if importlib.machinery.PathFinder.find_spec(top, ["/packages"]) is not None:
            return "package"
    except (ImportError, ValueError, OSError):
        pass
    return "missing"


def _imports(tree):
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.append({"module": alias.name, "names": [], "kind": _classify(alias.name)})
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [a.name for a in node.names]
            found.append({"module": node.module, "names": names, "kind": _classify(node.module)})
    return found


def _compile(req):
    source = req["source"]
    filename = req.get("filename") or "main.py"
    tree = ast.parse(source, filename)
    code = compile(tree, filename, "exec", dont_inherit=True)
    pyc = importlib._bootstrap_external._code_to_timestamp_pyc(code, 0, 0)
    return {"pyc": base64.b64encode(bytes(pyc)).decode("ascii"), "imports": _imports(tree)}


def _dotted(node):
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return base + "." + node.attr if base else node.attr
    return ""


def _annotation(node):
    if node is None:
        return None
    if isinstance(node, ast.Constant):
        if node.value is None:
            return {"name": "None"}
        if isinstance(node.value, str):
            try:
                return _annotation(ast.parse(node.value, mode="eval").body)
            except SyntaxError:
                return {"name": node.value}
        return {"name": repr(node.value)}
    if isinstance(node, (ast.Name, ast.Attribute)):
        return {"name": _dotted(node)}
    if isinstance(node, ast.Subscript):
        base = _dotted(node.value)
        items = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        if base.split(".")[-1] == "Literal":
            values = []
            for item in items:
                try:
                    values.append(_jsonable(ast.literal_eval(item)))
                except ValueError:
                    values.append(ast.unparse(item))
            return {"name": "Literal", "values": values}
        return {"name": base, "args": [_annotation(i) for i in items]}
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        return {"name": "Union", "args": [_annotation(node.left), _annotation(node.right)]}
    return {"name": ast.unparse(node)}


def _signature(req):
    tree = ast.parse(req["source"], "main.py")
    main = None
    aliases = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == "main":
            main = node
        elif isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            if isinstance(node.value, (ast.Name, ast.Attribute)):
                aliases[node.targets[0].id] = _dotted(node.value)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            if isinstance(node.value, (ast.Name, ast.Attribute)):
                aliases[node.target.id] = _dotted(node.value)
    if main is None:
        # A script without main is a module other scripts import (Windmill's
        # no_main_func): no parameters.
        return {"params": [], "aliases": aliases, "line": 0, "no_main": True}
    a = main.args
    params = []
    positional = a.posonlyargs + a.args
    defaults = [None] * (len(positional) - len(a.defaults)) + list(a.defaults)
    for arg, default in zip(positional, defaults):
        params.append(_param(arg, default, "positional"))
    if a.vararg is not None:
        params.append(_param(a.vararg, None, "varargs"))
    for arg, default in zip(a.kwonlyargs, a.kw_defaults):
        params.append(_param(arg, default, "keyword"))
    if a.kwarg is not None:
        params.append(_param(a.kwarg, None, "kwargs"))
    return {"params": params, "aliases": aliases, "line": main.lineno}


def _param(arg, default, kind):
    p = {"name": arg.arg, "kind": kind, "annotation": _annotation(arg.annotation)}
    if default is not None:
        p["has_default"] = True
        try:
            p["default"] = _jsonable(ast.literal_eval(default))
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            p["default_expr"] = ast.unparse(default)
    return p


_OPS = {"run": _run_job, "compile": _compile, "signature": _signature}


def run():
    """Handles the one request on stdin; returns the exit status for vane_run."""
    real_stdout = sys.stdout
    sys.stdout = sys.stderr
    try:
        req = json.loads(sys.stdin.buffer.read(), strict=False)
        op = _OPS[req.get("op", "run")]
    except BaseException as exc:
        _respond(_error(exc))
        return 1
    try:
        response = op(req)
    except SystemExit as exc:
        if exc.code in (None, 0):
            response = {"result": None}
        else:
            response = _error(exc)
    except BaseException as exc:
        response = _error(exc)
    finally:
        sys.stdout = real_stdout
    _respond(response)
    return 0


def init():
    """Warms what the first job would otherwise pay for, inside the snapshot."""
    json.loads(json.dumps({"a": [1, 2.5, "x", None, True]}, separators=(",", ":")))
    datetime.datetime.fromisoformat("2024-01-02T03:04:05+00:00").isoformat()
    base64.b64decode(base64.b64encode(b"warm"))
    _compile({"source": "def main(x: int = 1):\n    return {'x': x}\n", "filename": "warm.py"})
    _signature({"source": "from typing import Optional\ndef main(a: str, b: Optional[int] = None):\n    pass\n"})
    inspect.signature(init)
    traceback.format_exception(ValueError, ValueError("warm"), None)
    re.compile(r"\s+")
    typing.Optional[int]
    collections.OrderedDict()
    functools.reduce(lambda x, y: x + y, [1, 2])
    list(itertools.islice(itertools.count(), 2))
    io.StringIO("warm").read()
    marshal.dumps(1)
    string.ascii_letters
    time.time()
    uuid.UUID(int=0)
    # A first request's one-time costs: the opener's handlers, the header
    # parser's caches, a URL's parse (no connection is made).
    urllib.request.build_opener()
    http.client.parse_headers(io.BytesIO(b"Content-Type: text/plain\r\nContent-Length: 0\r\n\r\n"))
    urllib.request.Request("https://vane.invalid/a?b=c", headers={"Accept": "*/*"})
