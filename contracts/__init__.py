"""jghub's canonical datasets (contracts): the pydantic models records are validated against,
the identifier validators they use, jghub's code tables and deterministic sample records.

The ``contracts.plugin`` module registers the datasets with the hub; importing this package
does not import the hub.
"""

from contracts.catalog import CatalogItem
from contracts.codes import (
    CertificateType,
    ChangeType,
    CodeTable,
    CounterpartNature,
    InspectionCategory,
    InspectionForm,
    InspectionResult,
    SupervisionLevel,
)
from contracts.coordination import CoordinationRecord
from contracts.inspection import InspectionRecord, Inspector
from contracts.penalty import PenaltyRecord
from contracts.samples import (
    make_id_card,
    make_uscc,
    sample_catalog_item,
    sample_coordination,
    sample_inspection,
    sample_penalty,
)
from contracts.validators import (
    USCC,
    ChinaDatetime,
    IdCardNumber,
    RegionCode,
    id_card_check_char,
    id_card_error,
    is_valid_id_card,
    is_valid_org_code,
    is_valid_region_code,
    is_valid_region_code_12,
    is_valid_uscc,
    org_code_check_char,
    region_level,
    uscc_check_char,
    uscc_error,
)

__all__ = [
    "USCC",
    "CatalogItem",
    "CertificateType",
    "ChangeType",
    "ChinaDatetime",
    "CodeTable",
    "CoordinationRecord",
    "CounterpartNature",
    "IdCardNumber",
    "InspectionCategory",
    "InspectionForm",
    "InspectionRecord",
    "InspectionResult",
    "Inspector",
    "PenaltyRecord",
    "RegionCode",
    "SupervisionLevel",
    "id_card_check_char",
    "id_card_error",
    "is_valid_id_card",
    "is_valid_org_code",
    "is_valid_region_code",
    "is_valid_region_code_12",
    "is_valid_uscc",
    "make_id_card",
    "make_uscc",
    "org_code_check_char",
    "region_level",
    "sample_catalog_item",
    "sample_coordination",
    "sample_inspection",
    "sample_penalty",
    "uscc_check_char",
    "uscc_error",
]
