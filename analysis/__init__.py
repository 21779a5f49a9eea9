"""Offline analysis of allmos benchmark records (``result.json`` + optional ``trace.csv``).

Modules, one concept each:

* ``records`` - load records into a DataFrame; configuration columns, labels and baseline choice.
* ``stats``   - medians, spreads, bootstrap intervals and speedups (pure functions).
* ``tables``  - the per-configuration summary table, written as Markdown and LaTeX.
* ``plots``   - matplotlib figures (PNG + PDF).
* ``report``  - the command line: ``python analysis/report.py <sweep_folder>``.
"""
