from sqlalchemy import text

from cfcore.authority import SYSTEM


def test_app_opens_and_audits(app):
    with app.catalog.session() as s:
        app.audit.append(s, SYSTEM, "test.action", "thing", "1")
    app.audit.checkpoint()
    assert app.audit.verify().ok
    with app.catalog.session() as s:
        s.execute(text("UPDATE audit_log SET outcome='x' WHERE seq=1"))
    res = app.audit.verify()
    assert not res.ok and res.first_bad_seq == 1
