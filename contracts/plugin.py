"""The built-in ``contracts`` plugin: registers jghub's canonical datasets.

Loaded through the ``jghub.plugins`` entry-point group like any third-party plugin.
"""

from __future__ import annotations

from contracts.catalog import CatalogItem
from contracts.coordination import CoordinationRecord
from contracts.inspection import InspectionRecord
from contracts.penalty import PenaltyRecord
from hub.plugins import hookimpl
from hub.specs import DatasetSpec

__all__ = ["hub_register_datasets"]


@hookimpl
def hub_register_datasets() -> list[DatasetSpec]:
    """The ``inspection`` (监管行为·行政检查) and ``catalog_item`` (监管事项目录清单) datasets.

    Catalog items are partitioned by ``code`` so the versions of one item are delivered in
    order; inspections need no ordering. Also ``penalty`` (行政处罚) and ``coordination``
    (协同监管过程和结果), the other 监管行为 data reported to the national system.
    """
    return [
        DatasetSpec(
            name="inspection",
            version="1.0",
            model=InspectionRecord,
            title="监管行为·行政检查 (inspection record)",
            partition_field=None,
            key_field="inspection_no",
        ),
        DatasetSpec(
            name="catalog_item",
            version="1.0",
            model=CatalogItem,
            title="监管事项目录清单 (catalog item)",
            partition_field="code",
            key_field="code",
        ),
        DatasetSpec(
            name="penalty",
            version="1.0",
            model=PenaltyRecord,
            title="监管行为·行政处罚 (penalty decision)",
            key_field="decision_no",
        ),
        DatasetSpec(
            name="coordination",
            version="1.0",
            model=CoordinationRecord,
            title="协同监管过程和结果 (coordinated supervision report)",
            partition_field="task_no",
            key_field="task_no",
        ),
    ]
