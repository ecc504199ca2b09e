"""A griffe extension for the API pages: signatures for attrs classes.

griffe reads source code statically and knows dataclasses but not attrs, so a spec such as
``dilnet.blocks.Conv`` would be shown without its constructor (and griffe would warn that the
parameters its docstring documents are not in any signature). This extension imports each
class that has no ``__init__`` in its source and, where ``attrs.has(cls)``, adds the ``__init__``
that attrs generates: one parameter per field in attrs' order (base classes first), keyword-only
where attrs made it so, with the field's real default (``factory()`` for a factory).

Listed under ``extensions`` of the mkdocstrings python handler in ``mkdocs.yml``.
"""

import importlib

import griffe

try:
    import attrs
except ImportError:  # pragma: no cover - attrs is a dependency of dilnet
    attrs = None


def _runtime_class(cls):
    try:
        obj = importlib.import_module(cls.module.path)
        for part in cls.path[len(cls.module.path) + 1 :].split("."):
            obj = getattr(obj, part)
    except Exception:  # a class griffe sees but Python cannot import: leave it as it is
        return None
    return obj if isinstance(obj, type) else None


def _default(field):
    if field.default is attrs.NOTHING:
        return None
    if isinstance(field.default, attrs.Factory):
        return f"{getattr(field.default.factory, '__name__', 'factory')}()"
    return repr(field.default)


def _annotation(cls, field):
    # the annotation as written in the source (``Ints``) reads better than the runtime type
    for klass in (cls, *cls.mro()):
        member = klass.members.get(field.name)
        if member is not None and getattr(member, "annotation", None) is not None:
            return member.annotation
    return None


def _add_init(cls):
    runtime = _runtime_class(cls)
    if runtime is None or not attrs.has(runtime):
        return
    parameters = [
        griffe.Parameter("self", kind=griffe.ParameterKind.positional_or_keyword),
    ]
    for field in attrs.fields(runtime):
        if not field.init:
            continue
        kind = (
            griffe.ParameterKind.keyword_only
            if field.kw_only
            else griffe.ParameterKind.positional_or_keyword
        )
        parameters.append(
            griffe.Parameter(
                field.alias or field.name,
                annotation=_annotation(cls, field),
                kind=kind,
                default=_default(field),
            )
        )
    init = griffe.Function(
        "__init__",
        lineno=0,
        endlineno=0,
        parent=cls,
        parameters=griffe.Parameters(*parameters),
        returns="None",
    )
    cls.set_member("__init__", init)
    cls.labels.add("attrs")


def _walk(obj, seen):
    if obj.path in seen:
        return
    seen.add(obj.path)
    if obj.is_class and "__init__" not in obj.members:
        _add_init(obj)
    for member in list(obj.members.values()):
        if not member.is_alias and (member.is_module or member.is_class):
            _walk(member, seen)


class AttrsInit(griffe.Extension):
    """Add the ``__init__`` attrs generates to every attrs class of a loaded package."""

    def on_package(self, *, pkg, **kwargs):
        if attrs is not None:
            _walk(pkg, set())
