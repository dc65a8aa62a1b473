"""The in-app inbox: routes, rules, SQL and realtime events for one user's notifications."""
