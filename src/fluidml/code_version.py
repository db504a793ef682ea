"""Code versions: a hash of the *structure* of a task's code, for ``flow.run(cache="code")``.

What a task's code version covers:
- a function task: the function;
- a class task: its whole class body (``__init__``, ``run`` and every other method, class
  attributes, decorators, bases), and the same for each base class outside fluidml;
- transitively, every function, class and top-level assignment **of the same module** that this
  code refers to by a global name (a helper ``fit_model`` called from ``run``, a constant
  ``LR = 0.1``). Code in other modules is not followed: pin it with ``TaskSpec(version=...)``.

How: each part is parsed (``ast``) and hashed from ``ast.dump`` of its tree with docstrings taken
out, so comments, docstrings, blank lines and formatting do not change it, while renaming a
variable or changing a constant or an operator does. A code version is ``{qualname: hash}`` (12
hex characters per part, e.g. ``{"Train": ..., "Train.run": ..., "fit_model": ...}``), so a change
can be named ("code changed: Train.run"). Parts from other modules (bases) are named
``module.qualname``.

Without usable source (a lambda; a function made by ``exec``, typed into an interactive session or
a notebook that keeps no source; a file changed since it was imported, so that its lines no
longer match the loaded code), a part is hashed from its compiled code instead: bytecode,
constants and names, without docstrings and line numbers.

The hashes are the same in every process and on every machine with the same Python minor
version; ``ast.dump`` and the bytecode can differ between minor versions, so upgrading Python may
report code changes.
"""

import ast
import hashlib
import inspect
import linecache
import sys
import types
from typing import Any, Dict, Iterable, List, Optional, Set, Tuple

__all__ = ["CodeHasher"]

#: Bases of task classes that are not part of the task's code.
_PLATFORM_MODULES = ("builtins", "abc", "typing")
_DEFS = (ast.FunctionDef, ast.AsyncFunctionDef)
_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Module)
_PLAIN = (str, int, float, complex, bool, bytes, type(None), type(Ellipsis))


def _digest(texts: Iterable[str]) -> str:
    hasher = hashlib.blake2b(digest_size=6)
    for text in texts:
        hasher.update(text.encode("utf-8", "surrogatepass"))
        hasher.update(b"\x00")
    return hasher.hexdigest()


def _strip_docstrings(tree: ast.AST) -> None:
    """Takes the docstrings out of every module, class and function body of ``tree``."""
    for node in ast.walk(tree):
        if isinstance(node, _SCOPES) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(
                    first.value.value, str):
                node.body = node.body[1:] or [ast.Pass()]


def _first_line(node: Any) -> int:
    """The line a def starts on as the compiler counts it (its first decorator, if any)."""
    return min([node.lineno, *(d.lineno for d in node.decorator_list)])


def _loaded_names(nodes: Iterable[ast.AST]) -> Set[str]:
    return {n.id for node in nodes for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}


def _assigned_names(stmt: ast.stmt) -> List[str]:
    targets: List[ast.AST] = []
    if isinstance(stmt, ast.Assign):
        targets = list(stmt.targets)
    elif isinstance(stmt, (ast.AnnAssign, ast.AugAssign)) and getattr(stmt, "value", None) is not None:
        targets = [stmt.target]
    return [n.id for target in targets for n in ast.walk(target) if isinstance(n, ast.Name)]


class _SourceFile:
    """One source file, parsed once: its defs by qualname and its top-level assignments by name."""

    def __init__(self, filename: str, module_globals: Optional[Dict[str, Any]]):
        self.filename = filename
        self.defs: Dict[str, List[Any]] = {}
        self.assigned: Dict[str, List[ast.stmt]] = {}
        linecache.checkcache(filename)  # the file may have been edited since it was last read
        lines = linecache.getlines(filename, module_globals)
        try:
            tree = ast.parse("".join(lines)) if lines else None
        except (SyntaxError, ValueError):
            tree = None  # changed into something that does not parse: the loaded code is hashed instead
        if tree is None:
            return
        _strip_docstrings(tree)
        self._index(tree.body, "")
        for stmt in tree.body:
            for name in _assigned_names(stmt):
                self.assigned.setdefault(name, []).append(stmt)

    def _index(self, body: Iterable[ast.AST], prefix: str) -> None:
        """Indexes defs by the ``__qualname__`` Python gives them (``f.<locals>.g``, ``C.m``)."""
        for node in body:
            if isinstance(node, (*_DEFS, ast.ClassDef)):
                qualname = prefix + node.name
                self.defs.setdefault(qualname, []).append(node)
                self._index(node.body, qualname + (".<locals>." if isinstance(node, _DEFS) else "."))
                continue
            for field in ("body", "orelse", "finalbody", "handlers"):  # defs inside if/try/with/for
                inner = getattr(node, field, None)
                if isinstance(inner, list):
                    self._index(inner, prefix)

    def function(self, qualname: str, first_line: int) -> Optional[Any]:
        """The def of a function, if the file still has it where the loaded code says it starts."""
        for node in self.defs.get(qualname, ()):
            if isinstance(node, _DEFS) and _first_line(node) == first_line:
                return node
        return None

    def klass(self, cls: type, methods: Dict[str, int]) -> Optional[ast.ClassDef]:
        """The class statement of ``cls`` whose methods start where the loaded ones do."""
        for node in reversed(self.defs.get(cls.__qualname__, [])):
            if not isinstance(node, ast.ClassDef):
                continue
            lines: Dict[str, Set[int]] = {}
            for stmt in node.body:
                if isinstance(stmt, _DEFS):
                    lines.setdefault(stmt.name, set()).add(_first_line(stmt))
            if all(line in lines.get(name, ()) for name, line in methods.items()):
                return node
        return None


def _class_functions(cls: type) -> List[Tuple[str, types.FunctionType]]:
    """The functions a class body defines (methods, static and class methods, property accessors),
    unwrapped from decorators."""
    found = []
    for name, value in vars(cls).items():
        candidates = [value]
        if isinstance(value, (staticmethod, classmethod)):
            candidates = [value.__func__]
        elif isinstance(value, property):
            candidates = [value.fget, value.fset, value.fdel]
        for candidate in candidates:
            if isinstance(candidate, types.FunctionType):
                found.append((name, inspect.unwrap(candidate)))
    return found


def _const_text(value: Any) -> str:
    if isinstance(value, types.CodeType):
        return _code_text(value)
    if isinstance(value, (tuple, list)):
        return "(" + ",".join(_const_text(v) for v in value) + ")"
    if isinstance(value, frozenset):  # its order depends on string hashing, which varies per process
        return "frozenset(" + ",".join(sorted(_const_text(v) for v in value)) + ")"
    return repr(value) if isinstance(value, _PLAIN) else type(value).__qualname__


def _code_text(code: types.CodeType) -> str:
    """A code object's structure: bytecode, constants, names; no line numbers, no docstring."""
    consts = list(code.co_consts)
    if consts and not code.co_name.startswith("<") and (consts[0] is None or isinstance(consts[0], str)):
        consts[0] = None  # a function's first constant is its docstring (or None)
    return repr((code.co_code.hex(), [_const_text(c) for c in consts], code.co_names, code.co_varnames,
                 code.co_freevars, code.co_cellvars, code.co_argcount, code.co_posonlyargcount,
                 code.co_kwonlyargcount, code.co_flags))


def _code_names(code: types.CodeType) -> Set[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _code_names(const)
    return names


def _compiled_function(fn: types.FunctionType) -> Tuple[str, Set[str]]:
    """Hash and global names of a function from its compiled code (when its source is unusable)."""
    defaults = [_const_text(v) for v in (fn.__defaults__ or ())]
    kwdefaults = sorted(f"{k}={_const_text(v)}" for k, v in (fn.__kwdefaults__ or {}).items())
    return _digest([_code_text(fn.__code__), *defaults, *kwdefaults]), _code_names(fn.__code__)


class _Item:
    """Something to hash: a function or class object, or a node of a parsed file."""

    __slots__ = ("obj", "node", "source", "module", "globals")

    def __init__(self, obj: Any, node: Any, source: Optional[_SourceFile], module: str, globals_: Dict[str, Any]):
        self.obj, self.node, self.source, self.module, self.globals = obj, node, source, module, globals_


class CodeHasher:
    """Computes code versions; one per Flow, so that each class or function is hashed once."""

    def __init__(self) -> None:
        self._files: Dict[str, _SourceFile] = {}
        self._parts: Dict[int, Tuple[Any, Dict[str, str], Set[str]]] = {}  # id -> (obj, parts, names)
        self._versions: Dict[int, Tuple[Any, Dict[str, str]]] = {}

    def version(self, task: Any) -> Dict[str, str]:
        """The code version of a task class or function: ``{qualname: hash}`` of every part."""
        cached = self._versions.get(id(task))
        if cached is None:
            cached = self._versions[id(task)] = (task, self._version(task))
        return cached[1]

    def _version(self, root: Any) -> Dict[str, str]:
        root_module = getattr(root, "__module__", None) or ""
        queue: List[Any] = [root]
        if inspect.isclass(root):
            queue += [base for base in root.__mro__[1:] if _own_base(base)]
        parts: Dict[str, str] = {}
        seen: Set[Any] = set()
        while queue:
            item = queue.pop(0)
            key = ("node", id(item.node)) if isinstance(item, _Item) else id(item)
            if key in seen:
                continue
            seen.add(key)
            if isinstance(item, _Item):
                own, names = self._node_parts(item)
                module, globals_, source = item.module, item.globals, item.source
            else:
                own, names = self._object_parts(item)
                module = getattr(item, "__module__", None) or ""
                globals_ = _globals_of(item)
                source = self._source_of(item)
            prefix = "" if module == root_module else module + "."
            parts.update((prefix + name, value) for name, value in own.items())
            queue.extend(self._referenced(sorted(names), module, globals_, source))
        return parts

    # ----------------------------------------------------------------------------- following

    def _referenced(self, names: List[str], module: str, globals_: Dict[str, Any],
                    source: Optional[_SourceFile]) -> Iterable[Any]:
        """What the names refer to that belongs to the task's code: functions and classes defined in
        the same module, and the module's top-level assignments."""
        for name in names:
            value = globals_.get(name, globals_)
            if value is globals_:
                continue  # a builtin or a local name
            lambda_ = isinstance(value, types.FunctionType) and value.__name__ == "<lambda>"
            if lambda_ and source is not None and name in source.assigned:  # norm = lambda x: ...: its statement
                for stmt in source.assigned[name]:
                    yield _Item(name, stmt, source, module, globals_)
            elif isinstance(value, (types.FunctionType, type)) and (getattr(value, "__module__", None) or "") == module:
                yield value
            elif source is not None and name in source.defs and isinstance(value, (types.FunctionType, type)):
                for node in source.defs[name]:  # decorated by a wrapper from elsewhere: hash the def
                    yield _Item(None, node, source, module, globals_)
            elif source is not None and name in source.assigned:
                for stmt in source.assigned[name]:
                    yield _Item(name, stmt, source, module, globals_)

    # ------------------------------------------------------------------------------- hashing

    def _source(self, filename: Optional[str], globals_: Optional[Dict[str, Any]]) -> Optional[_SourceFile]:
        if not filename:
            return None
        source = self._files.get(filename)
        if source is None:
            source = self._files[filename] = _SourceFile(filename, globals_)
        return source

    def _source_of(self, obj: Any) -> Optional[_SourceFile]:
        if isinstance(obj, types.FunctionType):
            fn = inspect.unwrap(obj)
            return self._source(fn.__code__.co_filename, fn.__globals__)
        module = sys.modules.get(obj.__module__ or "")
        filename = getattr(module, "__file__", None)
        files = [fn.__code__.co_filename for _, fn in _class_functions(obj)
                 if fn.__qualname__.startswith(obj.__qualname__ + ".")]
        if not filename and files:  # (a class of a notebook cell: its methods name the cell's file)
            filename = next((name for name in files if not name.startswith("<")), files[0])
        return self._source(filename, vars(module) if module is not None else None)

    def _object_parts(self, obj: Any) -> Tuple[Dict[str, str], Set[str]]:
        cached = self._parts.get(id(obj))
        if cached is None:
            parts, names = self._class_parts(obj) if isinstance(obj, type) else self._function_parts(obj)
            cached = self._parts[id(obj)] = (obj, parts, names)
        return cached[1], cached[2]

    def _function_parts(self, fn: types.FunctionType) -> Tuple[Dict[str, str], Set[str]]:
        fn = inspect.unwrap(fn)
        source = self._source_of(fn)
        node = None
        if source is not None and fn.__name__ != "<lambda>":
            node = source.function(fn.__qualname__, fn.__code__.co_firstlineno)
        if node is None:
            digest, names = _compiled_function(fn)
            return {fn.__qualname__: digest}, names
        return {fn.__qualname__: _digest([ast.dump(node)])}, _loaded_names([node])

    def _class_parts(self, cls: type) -> Tuple[Dict[str, str], Set[str]]:
        qualname = cls.__qualname__
        functions = [(name, fn) for name, fn in _class_functions(cls) if fn.__qualname__ == f"{qualname}.{fn.__name__}"]
        source = self._source_of(cls)
        node = None
        if source is not None:  # (methods compiled elsewhere, e.g. a dataclass's __init__, are not in the file)
            node = source.klass(cls, {fn.__name__: fn.__code__.co_firstlineno for _, fn in functions
                                      if fn.__code__.co_filename == source.filename})
        if node is not None:
            return _class_node_parts(node, qualname), _loaded_names([node])
        parts: Dict[str, List[str]] = {}
        names: Set[str] = set()
        for name, fn in functions:  # no usable source: the compiled methods, and plain class attributes
            digest, fn_names = _compiled_function(fn)
            parts.setdefault(f"{qualname}.{name}", []).append(digest)
            names |= fn_names
        header = [f"{base.__module__}.{base.__qualname__}" for base in cls.__bases__]
        header += sorted(f"{k}={v!r}" for k, v in vars(cls).items() if isinstance(v, _PLAIN) and not k.startswith("__"))
        parts[qualname] = header
        return {name: _digest(texts) for name, texts in parts.items()}, names

    def _node_parts(self, item: _Item) -> Tuple[Dict[str, str], Set[str]]:
        node = item.node
        if isinstance(node, ast.ClassDef):
            return _class_node_parts(node, node.name), _loaded_names([node])
        if isinstance(node, _DEFS):
            return {node.name: _digest([ast.dump(node)])}, _loaded_names([node])
        return {item.obj: _digest([ast.dump(node)])}, _loaded_names([node])  # a top-level assignment


def _class_node_parts(node: ast.ClassDef, qualname: str) -> Dict[str, str]:
    """One part per method (``C.run``) and one for the rest of the class (``C``: its bases,
    keywords, decorators and every other statement of its body)."""
    methods: Dict[str, List[str]] = {}
    rest: List[str] = [node.name]
    header = (*node.bases, *node.keywords, *node.decorator_list, *getattr(node, "type_params", ()))
    rest += [ast.dump(n) for n in header]
    for stmt in node.body:
        if isinstance(stmt, _DEFS):
            methods.setdefault(f"{qualname}.{stmt.name}", []).append(ast.dump(stmt))
        else:
            rest.append(ast.dump(stmt))
    return {qualname: _digest(rest), **{name: _digest(texts) for name, texts in methods.items()}}


def _own_base(base: type) -> bool:
    """A base class that is part of a task class's code: not fluidml's, not Python's own."""
    module = getattr(base, "__module__", "") or ""
    return module not in _PLATFORM_MODULES and module != "fluidml" and not module.startswith("fluidml.")


def _globals_of(obj: Any) -> Dict[str, Any]:
    if isinstance(obj, types.FunctionType):
        return inspect.unwrap(obj).__globals__
    module = sys.modules.get(obj.__module__ or "")
    return vars(module) if module is not None else {}
