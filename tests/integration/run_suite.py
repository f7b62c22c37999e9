"""Runs one integration suite (test_NAME.py) for ctest and makes its skips
visible: each skipped test is printed with its reason on a line of its own
("SKIPPED ID: REASON"; scripts/test.sh lists them all at the end), and a
suite whose every test skipped exits 77, which ctest reports as skipped
(SKIP_RETURN_CODE), not passed.

usage: run_suite.py NAME"""
import sys
import unittest


def main():
    name = sys.argv[1]
    suite = unittest.defaultTestLoader.loadTestsFromName(f"test_{name}")
    result = unittest.TextTestRunner(verbosity=2, stream=sys.stderr).run(suite)
    skipped = [(test.id(), reason) for test, reason in result.skipped]
    for test_id, reason in skipped:
        print(f"SKIPPED {test_id}: {reason}", file=sys.stderr)
    if not result.wasSuccessful():
        return 1
    if result.testsRun > 0 and len(skipped) == result.testsRun:
        return 77
    return 0


if __name__ == "__main__":
    sys.exit(main())
