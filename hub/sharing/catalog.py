"""The government information resource catalog (政务信息资源目录) of the data-sharing
workflow: what each department offers, on which terms (国发〔2016〕51号).

A resource is declared in the hub file (``sharing.catalog``), in a dataset file (a ``catalog:``
block next to its fields) or registered by a plugin (``hub_register_catalog``). Each names the
hub dataset whose records it shares; the records the hub holds for that dataset are what a
grant reads.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from hub.config import CircuitPolicy, RetryPolicy
from hub.errors import ConfigError, NotFound
from hub.sharing.proxy import ProxySettings

__all__ = [
    "Catalog",
    "CatalogField",
    "CatalogResource",
    "Classification",
    "OpenAttribute",
    "QuotaSettings",
    "ShareMethod",
    "ShareType",
    "SharingSettings",
    "build_catalog",
]

ShareMethod = Literal["query", "subscription", "download"]
#: how sensitive a field (信息项) is; ``sensitive`` and ``secret`` fields are masked unless a
#: grant lists them in ``reveal``
Sensitivity = Literal["public", "internal", "sensitive", "secret"]
MaskKind = Literal["id_card", "phone", "name", "address", "partial", "full"]


class ShareType(StrEnum):
    """共享类型."""

    UNCONDITIONAL = "unconditional"  # 无条件共享: granted on application
    CONDITIONAL = "conditional"  # 有条件共享: the provider reviews each application
    NOT_SHARED = "not_shared"  # 不予共享: cannot be applied for (needs a legal basis)

    @property
    def label(self) -> str:
        return _SHARE_LABELS[self]


_SHARE_LABELS = {
    ShareType.UNCONDITIONAL: "无条件共享",
    ShareType.CONDITIONAL: "有条件共享",
    ShareType.NOT_SHARED: "不予共享",
}
_SHARE_BY_LABEL = {v: k for k, v in _SHARE_LABELS.items()}


class OpenAttribute(StrEnum):
    """开放属性 (opening to the public, distinct from sharing between departments)."""

    OPEN = "open"  # 无条件开放
    CONDITIONAL = "conditional"  # 有条件开放
    CLOSED = "closed"  # 不予开放


_OPEN_BY_LABEL = {
    "无条件开放": OpenAttribute.OPEN,
    "有条件开放": OpenAttribute.CONDITIONAL,
    "不予开放": OpenAttribute.CLOSED,
}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CatalogField(_Model):
    """信息项: one field of a resource."""

    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
    type: str = Field("string", min_length=1, max_length=40, description="数据类型")
    description: str = Field("", max_length=500, description="信息项描述")
    sensitivity: Sensitivity = Field("internal", description="敏感级别")
    mask: MaskKind | None = Field(
        None,
        description="how the value is masked for grants that do not reveal it (default for "
        "sensitive / secret fields: partial)",
    )

    @property
    def masked_by_default(self) -> bool:
        return self.mask is not None or self.sensitivity in ("sensitive", "secret")

    def mask_kind(self) -> str:
        return self.mask or "partial"


class Classification(_Model):
    """资源分类: 类 / 项 / 目 / 细目."""

    category: str = Field(min_length=1, max_length=100, description="类")
    item: str = Field("", max_length=100, description="项")
    subject: str = Field("", max_length=100, description="目")
    detail: str = Field("", max_length=100, description="细目")


class QuotaSettings(_Model):
    """A grant's daily quota."""

    requests_per_day: int = Field(1000, ge=1, le=10_000_000)
    records_per_day: int = Field(100_000, ge=1, le=1_000_000_000)


class CatalogResource(_Model):
    """政务信息资源: one catalog entry with the metadata of 51号文."""

    code: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9/_.-]{0,63}$", description="资源代码")
    name: str = Field(min_length=1, max_length=200, description="资源名称")
    dataset: str = Field(
        "",
        pattern=r"^$|^[a-z][a-z0-9_]{0,62}$",
        description="the hub dataset whose records are shared (a dataset file's own name)",
    )
    provider: str = Field(min_length=1, max_length=200, description="资源提供方")
    provider_code: str = Field(
        min_length=1,
        max_length=64,
        description="提供方代码: the department id its reviewers' credentials carry",
    )
    summary: str = Field("", max_length=4000, description="资源摘要")
    classification: Classification
    format: str = Field("json", min_length=1, max_length=40, description="资源格式")
    fields: list[CatalogField] = Field(default_factory=list, description="信息项")
    share_type: ShareType = Field(description="共享类型")
    share_conditions: str = Field("", max_length=4000, description="共享条件")
    not_shared_basis: str = Field(
        "", max_length=4000, description="不予共享的法律依据 (required for not_shared)"
    )
    share_methods: list[ShareMethod] = Field(
        default_factory=lambda: list[ShareMethod](["query"]), description="共享方式"
    )
    open_attribute: OpenAttribute = Field(OpenAttribute.CLOSED, description="开放属性")
    update_cycle: str = Field("实时", min_length=1, max_length=40, description="更新周期")
    published: dt.date = Field(description="发布日期")
    version: str = Field("1.0", min_length=1, max_length=40, description="版本")
    related: list[str] = Field(default_factory=list, description="关联资源代码")
    quota: QuotaSettings = Field(
        default_factory=QuotaSettings, description="default and largest quota of a grant"
    )
    max_days: int = Field(366, ge=1, le=3660, description="longest grant period in days")
    proxy: ProxySettings | None = Field(
        None,
        description="records live in the provider's own system: read them from its query "
        "endpoint (hub.sharing.proxy) instead of the hub store; query and download only",
    )

    @field_validator("share_type", mode="before")
    @classmethod
    def _share_label(cls, v: Any) -> Any:
        if isinstance(v, str) and v not in _SHARE_BY_LABEL and v not in set(ShareType):
            raise ValueError(
                f"share_type {v!r}: use 无条件共享, 有条件共享 or 不予共享 "
                "(or unconditional, conditional, not_shared)"
            )
        return _SHARE_BY_LABEL.get(v, v) if isinstance(v, str) else v

    @field_validator("open_attribute", mode="before")
    @classmethod
    def _open_label(cls, v: Any) -> Any:
        return _OPEN_BY_LABEL.get(v, v) if isinstance(v, str) else v

    @model_validator(mode="after")
    def _coherent(self) -> CatalogResource:
        if self.share_type is ShareType.NOT_SHARED and not self.not_shared_basis.strip():
            raise ValueError("a not_shared (不予共享) resource needs not_shared_basis (法律依据)")
        if self.share_type is ShareType.CONDITIONAL and not self.share_conditions.strip():
            raise ValueError(
                "a conditional (有条件共享) resource needs share_conditions (共享条件)"
            )
        names = [f.name for f in self.fields]
        if len(set(names)) != len(names):
            raise ValueError("a field (信息项) is listed twice")
        if len(set(self.share_methods)) != len(self.share_methods) or not self.share_methods:
            raise ValueError("share_methods must list query / subscription / download once each")
        if self.proxy is not None and "subscription" in self.share_methods:
            raise ValueError(
                "a proxied resource (proxy:) is read on request; it cannot offer subscription"
            )
        return self

    def field_names(self) -> list[str]:
        return [f.name for f in self.fields]

    def summary_doc(self) -> dict[str, Any]:
        """The resource as the catalog API shows it (a proxy's address and token stay in)."""
        doc = self.model_dump(mode="json", exclude={"proxy"})
        doc["proxied"] = self.proxy is not None
        doc["share_type_label"] = self.share_type.label
        return doc


class SharingSettings(_Model):
    """The ``sharing:`` section of the hub file."""

    catalog: list[CatalogResource] = Field(
        default_factory=list, description="catalog resources (政务信息资源目录)"
    )
    review_workdays: int = Field(
        10, ge=1, le=60, description="working days the provider has to decide an application"
    )
    refresh_seconds: float = Field(
        5.0,
        gt=0,
        le=3600,
        description="how often a node re-reads the grants of its subscriptions (revocations "
        "made on other nodes of a shared store)",
    )
    page_limit: int = Field(1000, ge=1, le=1000, description="most records in one query page")
    subscription_retry: RetryPolicy = Field(
        default_factory=RetryPolicy, description="retries of deliveries to a subscriber"
    )
    subscription_circuit: CircuitPolicy = Field(
        default_factory=CircuitPolicy, description="circuit breaker of each subscriber"
    )


@dataclass(slots=True)
class Catalog:
    """Every catalog resource of one hub, by code."""

    resources: dict[str, CatalogResource] = field(default_factory=dict)

    def get(self, code: str) -> CatalogResource:
        r = self.resources.get(code)
        if r is None:
            raise NotFound(f"no catalog resource with code {code!r}", field="code")
        return r

    def search(
        self,
        *,
        q: str | None = None,
        provider: str | None = None,
        share_type: str | None = None,
        method: str | None = None,
    ) -> list[CatalogResource]:
        """Resources matching every given filter; ``q`` searches code, name, summary,
        provider and classification (case-insensitive substring)."""
        out = []
        needle = q.casefold() if q else None
        for r in self.resources.values():
            if provider and provider not in (r.provider, r.provider_code):
                continue
            if share_type and share_type not in (r.share_type.value, r.share_type.label):
                continue
            if method and method not in r.share_methods:
                continue
            if needle is not None:
                c = r.classification
                hay = " ".join(
                    (r.code, r.name, r.summary, r.provider, c.category, c.item, c.subject, c.detail)
                ).casefold()
                if needle not in hay:
                    continue
            out.append(r)
        return out


def resource_from_dataset(dataset: Any, block: CatalogResource) -> CatalogResource:
    """A dataset file's ``catalog:`` block, completed from the dataset: its name, and its
    fields when the block lists none (type, description; ``sensitive`` fields are sensitive)."""
    update: dict[str, Any] = {"dataset": dataset.name}
    if not block.fields:
        update["fields"] = [
            CatalogField(
                name=name,
                type=decl.type,
                description=decl.description or decl.title,
                sensitivity="sensitive" if decl.sensitive else "internal",
            )
            for name, decl in dataset.fields.items()
        ]
    return block.model_copy(update=update)


def build_catalog(
    groups: Iterable[tuple[str, Sequence[CatalogResource]]], datasets: Iterable[str]
) -> Catalog:
    """One catalog from ``(where, resources)`` groups (the hub file, dataset files, plugins):
    codes are unique and every resource names a registered dataset."""
    known = set(datasets)
    cat = Catalog()
    owner: dict[str, str] = {}
    for where, resources in groups:
        for r in resources:
            if r.code in cat.resources:
                raise ConfigError(
                    f"catalog resource {r.code!r} of {where} is also declared by {owner[r.code]}",
                    field="sharing.catalog.code",
                )
            if r.proxy is not None:
                if not r.dataset or r.dataset in known:
                    raise ConfigError(
                        f"catalog resource {r.code!r} of {where} is proxied: its dataset names "
                        f"the provider's data, not one the hub holds ({r.dataset or '(none)'!r})",
                        field="sharing.catalog.dataset",
                    )
            elif r.dataset not in known:
                raise ConfigError(
                    f"catalog resource {r.code!r} of {where}: unknown dataset "
                    f"{r.dataset or '(none)'!r}; registered: {', '.join(sorted(known))}",
                    field="sharing.catalog.dataset",
                )
            cat.resources[r.code] = r
            owner[r.code] = where
    return cat
