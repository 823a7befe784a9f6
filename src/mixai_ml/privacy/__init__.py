"""Privacy: the purge of withdrawn users' data and its 24-hour promise (docs/privacy.md).

Who may be trained on is :mod:`mixai_ml.governance`; this package removes the data of the users
who withdrew (CONTRACTS §4), from every *place* that holds it:

* :mod:`~mixai_ml.privacy.targets`: who and what goes (legal holds kept);
* :mod:`~mixai_ml.privacy.tables`: the places in the database (:data:`TABLE_PLACES`);
* :mod:`~mixai_ml.privacy.files`: the places in files, by kind (:data:`FILE_KINDS`; the
  catalog's ``personal_data_files`` lists them);
* :mod:`~mixai_ml.privacy.purge`: a run over every place, audited and recorded;
* :mod:`~mixai_ml.privacy.status`: pending withdrawals and their deadlines.
"""

from mixai_ml.privacy.files import FILE_KINDS, FileBusy, FilePlace
from mixai_ml.privacy.purge import (
    AUDIT_COLUMNS,
    PurgeIncomplete,
    PurgeResult,
    purge_withdrawn_users,
)
from mixai_ml.privacy.status import (
    PURGE_DEADLINE,
    PrivacyStatus,
    pending_withdrawals,
    privacy_status,
)
from mixai_ml.privacy.tables import TABLE_PLACES, TablePlace
from mixai_ml.privacy.targets import PurgeTargets, withdrawal_times

__all__ = [
    "AUDIT_COLUMNS",
    "FILE_KINDS",
    "PURGE_DEADLINE",
    "TABLE_PLACES",
    "FileBusy",
    "FilePlace",
    "PrivacyStatus",
    "PurgeIncomplete",
    "PurgeResult",
    "PurgeTargets",
    "TablePlace",
    "pending_withdrawals",
    "privacy_status",
    "purge_withdrawn_users",
    "withdrawal_times",
]
