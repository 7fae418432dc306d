"""Audit a user's own model: does it train in the kernel (lazy) regime, criterion by criterion?

* :func:`audit` — measure the eNTK at init over seeds, train the model beside its linearization, compare with NTK
  regression, and judge each criterion (``tangentlab audit MODULE:FACTORY --data NAME`` on the command line);
* :class:`AuditResult` — verdict, failing criteria, every measurement, the trained model;
* :class:`Criterion`, :class:`Thresholds` — one judged criterion, and the thresholds with their reasons;
* :class:`FactoryError` — a factory that cannot be imported or called, or whose model does not fit the data.
"""

from tangentlab.auditing._audit import AuditResult, audit
from tangentlab.auditing._criteria import Criterion, Thresholds
from tangentlab.auditing._factory import FactoryError
from tangentlab.auditing._measure import Measurements

__all__ = ["AuditResult", "Criterion", "FactoryError", "Measurements", "Thresholds", "audit"]
