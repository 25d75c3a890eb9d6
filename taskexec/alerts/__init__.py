"""Awareness: schedules, detections (each a probe), alert state and notifications.

``check`` runs every detection probe, opens an alert for each new finding and resolves the ones
that are gone (the state lives in the ``alerts`` table, so each alert fires once), and sends
notifications through apprise. Imports croniter and apprise (the ``alerts`` extra) lazily.
"""
