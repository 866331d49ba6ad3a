"""The canonical 监管事项目录清单 item (supervision catalog item), one version of it."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
)
from pydantic_core import PydanticCustomError

from contracts.codes import ChangeType, SupervisionLevel
from contracts.validators import CATALOG_CODE_PATTERN, USCC, RegionCode

__all__ = ["CatalogItem"]

_Method = Annotated[str, StringConstraints(min_length=1, max_length=100)]
_Measure = Annotated[str, StringConstraints(min_length=1, max_length=500)]


class CatalogItem(BaseModel):
    """监管事项目录清单: one version of a catalog item with its ten elements (十要素).

    The catalog is pushed to the national system and changes over time: each record is one
    ``version`` of the item ``code``, with the ``change_type`` that produced it. Version 1 is
    always a ``create``; later versions are ``change`` or ``revoke``.
    """

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, populate_by_name=True)

    # ----------------------------------------------------------------- identity and version
    code: str = Field(description="监管事项目录编码", pattern=CATALOG_CODE_PATTERN)
    version: int = Field(description="版本号", ge=1)
    change_type: ChangeType = Field(description="变更类型")
    effective_date: date = Field(description="生效日期")
    region_code: RegionCode = Field(description="行政区划代码")

    # ----------------------------------------------------------------- the ten elements
    department: str = Field(description="监管部门", min_length=1, max_length=200)
    department_code: USCC = Field(description="监管部门统一社会信用代码")
    main_item_name: str = Field(description="主项名称", min_length=1, max_length=200)
    sub_item_name: str = Field(description="子项名称", min_length=1, max_length=200)
    supervision_methods: list[_Method] = Field(description="监管方式", min_length=1, max_length=20)
    supervision_measures: list[_Measure] = Field(
        description="监管措施", min_length=1, max_length=50
    )
    supervised_object: str = Field(description="监管对象", min_length=1, max_length=500)
    legal_basis: str = Field(description="设定依据", min_length=1, max_length=4000)
    supervision_process: str = Field(description="监管流程", min_length=1, max_length=4000)
    supervision_result: str = Field(description="监管结果", min_length=1, max_length=2000)
    supervision_levels: list[SupervisionLevel] = Field(
        description="监管层级", min_length=1, max_length=len(SupervisionLevel)
    )

    @field_validator("change_type")
    @classmethod
    def _check_change_type(cls, value: ChangeType, info: ValidationInfo) -> ChangeType:
        version = info.data.get("version")
        if version is not None and (value is ChangeType.CREATE) != (version == 1):
            raise PydanticCustomError(
                "change_type_version",
                "变更类型 (change_type) '{change_type}' does not fit version {version}: "
                "version 1 is a 'create', later versions are 'change' or 'revoke'",
                {"change_type": value.value, "version": version},
            )
        return value

    @field_validator("supervision_levels")
    @classmethod
    def _check_levels_unique(cls, value: list[SupervisionLevel]) -> list[SupervisionLevel]:
        if len(set(value)) != len(value):
            raise PydanticCustomError(
                "duplicate_level", "监管层级 (supervision_levels) lists a level twice", {}
            )
        return value
