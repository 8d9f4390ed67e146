"""AWS adapters: sessions (assume-role, region), clients with adaptive retries, reads and actions.

No policy lives here: callers decide whether an action may run; these modules only do it.
"""
