"""Reports read finished studies and registered models; they never train.

``python -m reports.build --study NAME`` (one study) and ``python -m reports.compare`` (champions side by
side) each write one self-contained HTML page and a Markdown summary beside it.
"""

from reports.build import ReportError, ReportPaths, build_report
from reports.compare import CompareOutput, NotComparable, build_comparison

__all__ = ["CompareOutput", "NotComparable", "ReportError", "ReportPaths", "build_comparison", "build_report"]
