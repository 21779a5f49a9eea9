"""Offline analysis of allmos benchmark records (``result.json`` + optional ``trace.csv``).

Modules, one concept each:

* ``records``     - load records into a DataFrame; configuration columns and labels (point names first).
* ``baseline``    - which configuration each one is compared with (point name, switch values, grouped).
* ``stats``       - medians, spreads, speedups, the Welch interval of a ratio, noise (pure functions).
* ``summary``     - the per-configuration summary table (numbers) and the A/A noise floor.
* ``tables``      - that table as text: Markdown and LaTeX.
* ``labels``      - names, caption line and colours of configurations in tables and figures.
* ``plots``       - bar figures (metric bars, speedup bars), PNG + PDF.
* ``figures``     - kind-specific figures: cumulative staircase, metric vs swept parameter, timelines.
* ``report_text`` - the report's header and LaTeX caption.
* ``serving``     - serving sweeps in numbers: per configuration and request rate, and the sustained rate.
* ``serving_figures`` - latency percentiles and goodput against the request rate, PNG + PDF.
* ``serving_report``  - a serving sweep's report (kind ``serving``): its header, tables and figures.
* ``report``      - the command line: ``python analysis/report.py <sweep_folder>``.
"""
