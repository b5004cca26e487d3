"""Onboarding and checking a cluster: the one probe call (partitions, accounts, accounting, tools, set-up lines),
the profile ``cluster add`` proposes from it, and ``doctor``'s checks with their fixes. Pure: the CLI runs them."""
