"""HTTP triggers, one blueprint per area. Each function is thin: authenticate, validate, call ``shared``."""
