"""Console screens: dashboard, dumps browser, schedules, run detail, help, modals."""
