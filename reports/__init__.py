"""Reports read finished studies and registered models; they never train.

``python -m reports.build --study NAME`` (one study) and ``python -m reports.compare`` (champions side by
side) each write one self-contained HTML page and a Markdown summary beside it (by default under the
project's ``reports/out/``).

The package imports none of its modules, so ``python -m reports.build`` runs its module once; import what you
need from :mod:`reports.build` (``build_report``), :mod:`reports.sources` (``ReportError``) or
:mod:`reports.compare` (``build_comparison``, ``NotComparable``). From ``search/`` they use only
:mod:`search.record`: the study record is the whole contract (it names its tracking store and parent run);
``search/`` never imports ``reports/`` (``search.run`` runs ``python -m reports.build --record ...`` as its
own command).
"""
