"""Schedulers: what each step computes; `scheduler=` picks one."""
