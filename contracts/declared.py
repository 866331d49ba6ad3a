"""Datasets declared in YAML: a platform without an adapter package of its own joins by
configuration only (e.g. the 投资项目在线审批监管平台, investment project approval platform).

A dataset file holds one dataset::

    name: project_approval
    version: "1.0"
    title: 投资项目审批结果 (investment project approval result)
    key_field: approval_no
    partition_field: project_code
    fields:
      project_code: {type: string, required: true, pattern: '^\\d{4}-\\d{6}-\\d{2}-\\d{2}-\\d{6}$'}
      applicant_uscc: {type: uscc, required: true}
      approval_date: {type: date}
      departments: {type: list, items: string}

The hub file names dataset files or folders under ``datasets:``; each becomes a pydantic model
(``extra="forbid"``) built once at start, validated exactly like the built-in contracts, with
the national code checks (统一社会信用代码, 身份证号, 行政区划代码) available as field types.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator, model_validator

from contracts.validators import USCC, ChinaDatetime, IdCardNumber, RegionCode
from hub.config import load_yaml_file, validate_section
from hub.errors import ConfigError
from hub.specs import DatasetSpec

__all__ = ["DatasetFile", "FieldDecl", "build_model", "load_dataset_file", "load_dataset_files"]

FieldType = Literal[
    "string",
    "integer",
    "number",
    "decimal",
    "boolean",
    "date",
    "datetime",
    "uscc",
    "id_card",
    "region_code",
    "list",
    "object",
]

_SCALARS: dict[str, Any] = {
    "string": str,
    "integer": int,
    "number": float,
    "decimal": Decimal,
    "boolean": bool,
    "date": dt.date,
    "datetime": ChinaDatetime,
    "uscc": USCC,
    "id_card": IdCardNumber,
    "region_code": RegionCode,
}


class FieldDecl(BaseModel):
    """One field of a declared dataset."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: FieldType = "string"
    required: bool = False
    title: str = ""
    description: str = ""
    max_length: int | None = Field(None, ge=1)
    min_length: int | None = Field(None, ge=0)
    pattern: str | None = None
    enum: list[Any] | None = None
    minimum: float | None = None
    maximum: float | None = None
    items: FieldType | None = Field(None, description="element type of a list")
    sensitive: bool = Field(False, description="personal or confidential (masking, encryption)")

    @model_validator(mode="after")
    def _coherent(self) -> FieldDecl:
        if self.type == "list" and self.items in (None, "list", "object"):
            raise ValueError("a list field needs 'items: <scalar type>'")
        if self.type != "list" and self.items is not None:
            raise ValueError("'items' only applies to type: list")
        if self.pattern is not None and self.type not in ("string", "list"):
            raise ValueError("'pattern' only applies to strings")
        return self


class DatasetFile(BaseModel):
    """A dataset file (``datasets/<name>.yaml``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,62}$")
    version: str = "1.0"
    title: str = ""
    key_field: str | None = None
    partition_field: str | None = None
    fields: dict[str, FieldDecl] = Field(min_length=1)
    catalog: dict[str, Any] | None = Field(
        None,
        description="政务信息资源目录 entry sharing this dataset (hub.sharing.CatalogResource; "
        "its fields default to the dataset's)",
    )

    @field_validator("fields")
    @classmethod
    def _names(cls, v: dict[str, FieldDecl]) -> dict[str, FieldDecl]:
        for name in v:
            if not name.isidentifier() or name.startswith("_"):
                raise ValueError(f"field name {name!r} must be an identifier not starting with _")
        return v

    @model_validator(mode="after")
    def _known_key_fields(self) -> DatasetFile:
        for what in ("key_field", "partition_field"):
            name = getattr(self, what)
            if name is not None and name not in self.fields:
                raise ValueError(f"{what} {name!r} is not one of the fields")
        return self


def _annotation(decl: FieldDecl) -> Any:
    if decl.type == "object":
        return dict[str, Any]
    if decl.type == "list":
        assert decl.items is not None
        inner: Any = _SCALARS[decl.items]
        if decl.pattern is not None:
            inner = Annotated[inner, Field(pattern=decl.pattern)]
        return list[inner]  # type: ignore[valid-type]
    base = _SCALARS[decl.type]
    if decl.enum is not None:
        return Literal[tuple(decl.enum)]
    return base


def build_model(ds: DatasetFile) -> type[BaseModel]:
    """The pydantic model of a declared dataset (unknown fields are refused)."""
    fields: dict[str, Any] = {}
    for name, decl in ds.fields.items():
        constraints: dict[str, Any] = {"title": decl.title or None, "description": decl.description}
        if decl.type == "string":
            constraints.update(
                max_length=decl.max_length, min_length=decl.min_length, pattern=decl.pattern
            )
        if decl.type in ("integer", "number", "decimal"):
            constraints.update(ge=decl.minimum, le=decl.maximum)
        if decl.type == "list":
            constraints.update(max_length=decl.max_length, min_length=decl.min_length)
        ann = _annotation(decl)
        if decl.required:
            fields[name] = (ann, Field(..., **constraints))
        else:
            fields[name] = (ann | None, Field(None, **constraints))
    model: type[BaseModel] = create_model(  # type: ignore[call-overload]
        "".join(p.title() for p in ds.name.split("_")),
        __config__=ConfigDict(extra="forbid", str_strip_whitespace=True),
        **fields,
    )
    model.__doc__ = ds.title or ds.name
    return model


def load_dataset_file(path: Path) -> DatasetSpec:
    """Read and compile one dataset file; errors name the file, line and key."""
    located = load_yaml_file(path)
    ds: DatasetFile = validate_section(DatasetFile, located.data, path, located)
    try:
        model = build_model(ds)
    except Exception as exc:  # e.g. a pattern that is not a valid regular expression
        raise ConfigError(
            f"{path}: dataset {ds.name!r} cannot be built: {exc}", field="fields"
        ) from None
    catalog = None
    if ds.catalog is not None:
        from hub.sharing.catalog import CatalogResource, resource_from_dataset

        block = validate_section(CatalogResource, ds.catalog, path, located, ("catalog",))
        catalog = resource_from_dataset(ds, block)
    return DatasetSpec(
        name=ds.name,
        version=ds.version,
        model=model,
        title=ds.title,
        partition_field=ds.partition_field,
        key_field=ds.key_field,
        catalog=catalog,
    )


def load_dataset_files(base: Path, entries: list[str]) -> list[DatasetSpec]:
    """Dataset files named in a hub file (files or folders, relative to it)."""
    out: list[DatasetSpec] = []
    for entry in entries:
        p = base / entry
        if p.is_dir():
            files = sorted([*p.glob("*.yaml"), *p.glob("*.yml")])
        elif p.exists():
            files = [p]
        else:
            raise ConfigError(
                f"dataset file or folder {entry!r} does not exist ({p})", field="datasets"
            )
        out += [load_dataset_file(f) for f in files]
    return out
