"""Dashboards, their feeds' table and the rows ingestion writes (docs/contract.md §1, §3).

What other packages use: ``models`` (the tables), ``vocabulary`` (kinds, modes, feed sources
and roles), ``columns`` (what a dashboard expects of a CSV file), ``presets`` (the production
schedule's shape), ``service`` (creating, updating, reading and purging dashboards),
``operations`` (a dashboard's retention and manual re-runs, with their defaults) and
``kinds`` (where a kind of dashboard registers the tables it keeps beside a row, so that this
package never imports one). HTTP: ``api`` with its ``schemas``; ``rows`` is the row list it
serves.
"""
