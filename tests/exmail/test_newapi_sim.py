"""The simulator's new-API read endpoints and qyapi mail count, over real HTTP."""

from __future__ import annotations

from typing import Any

import aiohttp

from tests.plugins.sim import ExmailSim

CORP = "wwglobex0000000001"


async def _call(
    sim: ExmailSim, method: str, path: str, *, token: str, body: Any = None, **query: str
) -> dict[str, Any]:
    async with (
        aiohttp.ClientSession() as http,
        http.request(
            method, f"{sim.url}/cgi-bin/{path}", params={"access_token": token, **query}, json=body
        ) as resp,
    ):
        assert resp.status == 200
        doc: dict[str, Any] = await resp.json()
        return doc


def _token(sim: ExmailSim) -> str:
    return sim.state.issue_token(CORP)[0]


async def test_newcount_plain_dated_and_post(exmail_sim: ExmailSim) -> None:
    """newcount answers the unread count to every documented variant of the request."""
    exmail_sim.state.send_mail(CORP, to="boss@globex.com", sender="a@b.cn")
    token = _token(exmail_sim)
    plain = await _call(exmail_sim, "GET", "mail/newcount", token=token, userid="boss@globex.com")
    dated = await _call(
        exmail_sim,
        "GET",
        "mail/newcount",
        token=token,
        userid="boss@globex.com",
        begin_date="2016-10-01",
        end_date="2026-12-31",
    )
    body = {
        "userid": "boss@globex.com",
        "type": 0,
        "begin_date": "2016-10-01",
        "end_date": "2026-12-31",
    }
    posted = await _call(exmail_sim, "POST", "mail/newcount", token=token, body=body)
    assert plain == dated == posted == {"errcode": 0, "errmsg": "ok", "count": 1}


async def test_newcount_refusals(exmail_sim: ExmailSim) -> None:
    """A bad token, an unknown mailbox, a bad date or (when required) no dates are errcodes."""
    exmail_sim.state.send_mail(CORP, to="boss@globex.com", sender="a@b.cn")
    token = _token(exmail_sim)
    box = "boss@globex.com"
    assert (await _call(exmail_sim, "GET", "mail/newcount", token="nope", userid=box))[
        "errcode"
    ] == 40014
    unknown = await _call(exmail_sim, "GET", "mail/newcount", token=token, userid="x@globex.com")
    assert unknown["errcode"] == 60111
    bad = await _call(exmail_sim, "GET", "mail/newcount", token=token, userid=box, begin_date="1")
    assert bad["errcode"] == 40035
    exmail_sim.state.configure(CORP, newcount_dates="required")
    undated = await _call(exmail_sim, "GET", "mail/newcount", token=token, userid=box)
    assert undated["errcode"] == 40035


async def test_directory_endpoints(exmail_sim: ExmailSim) -> None:
    """department/list and user/simplelist (fetch_child) describe the simulated directory."""
    exmail_sim.state.add_user(CORP, "ann@globex.com", Name="Ann")
    exmail_sim.state.add_user(CORP, "bob@globex.com", Name="Bob", department=[7])
    token = _token(exmail_sim)
    departments = await _call(exmail_sim, "GET", "department/list", token=token)
    assert [d["id"] for d in departments["department"]] == [1, 7]
    everyone = await _call(
        exmail_sim, "GET", "user/simplelist", token=token, department_id="1", fetch_child="1"
    )
    assert everyone["userlist"] == [
        {"userid": "ann@globex.com", "name": "Ann", "department": [1]},
        {"userid": "bob@globex.com", "name": "Bob", "department": [7]},
    ]
    only_seven = await _call(
        exmail_sim, "GET", "user/simplelist", token=token, department_id="7", fetch_child="0"
    )
    assert [u["userid"] for u in only_seven["userlist"]] == ["bob@globex.com"]


async def test_qyapi_newcount_by_wecom_userid(exmail_sim: ExmailSim) -> None:
    """qyapi maps an email to its member's userid and counts that member's unread mail."""
    exmail_sim.state.add_user(CORP, "carol@globex.com", wecom_userid="CarolW")
    exmail_sim.state.send_mail(CORP, to="carol@globex.com", sender="a@b.cn")
    exmail_sim.state.send_mail(CORP, to="carol@globex.com", sender="a@b.cn")
    token = _token(exmail_sim)
    found = await _call(
        exmail_sim,
        "POST",
        "user/get_userid_by_email",
        token=token,
        body={"email": "Carol@globex.com", "email_type": 1},
    )
    assert found["userid"] == "CarolW"
    count = await _call(
        exmail_sim, "POST", "exmail/mail/get_newcount", token=token, body={"userid": "CarolW"}
    )
    assert count["count"] == 2
    missing = await _call(
        exmail_sim, "POST", "user/get_userid_by_email", token=token, body={"email": "z@globex.com"}
    )
    assert missing["errcode"] == 46004
