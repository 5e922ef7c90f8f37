"""The directory: its model (:mod:`model`: users, groups, applications, grants, mailboxes) and the
deterministic seed (:mod:`seed`, with :mod:`seed_apps` and :mod:`seed_mail`) every service reads."""
