"""The judge: compares a candidate release with the stable one on live data. Pure: no I/O.

Every test here is valid under continuous monitoring (anytime-valid): the judge may look
after every second and the chance of a false rollback over the whole deployment stays at
most the configured alpha."""
