from tests.conformance.harness import MAX_ERRORS


def pytest_terminal_summary(terminalreporter):
    if not MAX_ERRORS:
        return
    terminalreporter.section("conformance: largest absolute error per fixture kind and output")
    for (kind, name), err in sorted(MAX_ERRORS.items()):
        terminalreporter.write_line(f"{kind:24s} {name:28s} {err:.3e}")
