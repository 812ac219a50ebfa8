"""What the tests share and are not tests themselves: a throwaway PostgreSQL server (``pg``), a
local HTTP server (``httpserver``), the real processes the crash tests kill (``crash_driver``,
``delivery_driver``), and helpers for daemon and delivery tests."""
