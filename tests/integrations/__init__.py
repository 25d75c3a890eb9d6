"""Tests of the scheduler integrations (taskexec/integrations/)."""
