"""The dashboard's widgets: the apps table, the event log, the status line and the detail gauges."""
