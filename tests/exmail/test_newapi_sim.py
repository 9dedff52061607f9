"""The simulator's new-API read endpoints and qyapi mail count, over real HTTP."""

from __future__ import annotations

from typing import Any

import aiohttp

from bridge.simulator.exmail_newapi_http import NEWAPI
from bridge.simulator.exmail_newapi_state import NewApiState
from tests.plugins.sim import ExmailSim

CORP = "wwglobex0000000001"
BOSS = "boss@globex.com"
DATES = {"begin_date": "2016-10-01", "end_date": "2026-12-31"}


class Api:
    """Calls the simulator as a new-API client does, with a token of CORP."""

    def __init__(self, sim: ExmailSim, http: aiohttp.ClientSession) -> None:
        self.sim = sim
        self.http = http
        self.token = ""

    @property
    def state(self) -> NewApiState:
        return self.sim.app[NEWAPI]

    async def __call__(
        self, method: str, path: str, *, body: Any = None, token: str = "", **query: str
    ) -> dict[str, Any]:
        if not self.token:
            self.token = (await self._get("gettoken", corpid=CORP, corpsecret="s"))["access_token"]
        params = {"access_token": token or self.token, **query}
        async with self.http.request(
            method, f"{self.sim.url}/cgi-bin/{path}", params=params, json=body
        ) as resp:
            assert resp.status == 200
            doc: dict[str, Any] = await resp.json()
            return doc

    async def _get(self, path: str, **query: str) -> dict[str, Any]:
        async with self.http.get(f"{self.sim.url}/cgi-bin/{path}", params=query) as resp:
            doc: dict[str, Any] = await resp.json()
            return doc

    async def control(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        async with self.http.post(f"{self.sim.url}/_sim/{path}", json=body) as resp:
            doc: dict[str, Any] = await resp.json()
            assert resp.status == 200, doc
            return doc


async def _api(sim: ExmailSim, http: aiohttp.ClientSession) -> Api:
    api = Api(sim, http)
    await api.control("api/corps", {"corp_id": CORP})
    return api


async def test_newcount_plain_dated_and_post(exmail_sim: ExmailSim) -> None:
    """newcount answers the unread count to every documented variant of the request."""
    async with aiohttp.ClientSession() as http:
        api = await _api(exmail_sim, http)
        await api.control("mail", {"tenant": CORP, "to": BOSS, "from": "a@b.cn"})
        plain = await api("GET", "mail/newcount", userid=BOSS)
        dated = await api("GET", "mail/newcount", userid=BOSS, **DATES)
        posted = await api("POST", "mail/newcount", body={"userid": BOSS, "type": 0, **DATES})
    assert plain == dated == posted == {"errcode": 0, "errmsg": "ok", "count": 1}


async def test_newcount_refusals(exmail_sim: ExmailSim) -> None:
    """A bad token, an unknown mailbox, a bad date or (when required) no dates are errcodes."""
    async with aiohttp.ClientSession() as http:
        api = await _api(exmail_sim, http)
        await api.control("mail", {"tenant": CORP, "to": BOSS, "from": "a@b.cn"})
        assert (await api("GET", "mail/newcount", token="nope", userid=BOSS))["errcode"] == 40014
        assert (await api("GET", "mail/newcount", userid="x@globex.com"))["errcode"] == 60111
        bad = await api("GET", "mail/newcount", userid=BOSS, begin_date="1")
        assert bad["errcode"] == 40035
        api.state.settings.newcount_dates = "required"
        assert (await api("GET", "mail/newcount", userid=BOSS))["errcode"] == 40035
        assert (await api("GET", "mail/newcount", userid=BOSS, **DATES))["count"] == 1


async def test_directory_endpoints(exmail_sim: ExmailSim) -> None:
    """department/list and user/simplelist (fetch_child) describe the simulated directory."""
    async with aiohttp.ClientSession() as http:
        api = await _api(exmail_sim, http)
        await api.control("api/users", {"tenant": CORP, "userid": "ann@globex.com", "name": "Ann"})
        await api.control(
            "api/users",
            {"tenant": CORP, "userid": "bob@globex.com", "name": "Bob", "department": [7]},
        )
        departments = await api("GET", "department/list")
        everyone = await api("GET", "user/simplelist", department_id="1", fetch_child="1")
        only_seven = await api("GET", "user/simplelist", department_id="7", fetch_child="0")
        await api.control(
            "api/users", {"tenant": CORP, "userid": "ann@globex.com", "action": "remove"}
        )
        after = await api("GET", "user/simplelist", department_id="1", fetch_child="1")
    assert [d["id"] for d in departments["department"]] == [1, 7]
    assert everyone["userlist"] == [
        {"userid": "ann@globex.com", "name": "Ann", "department": [1]},
        {"userid": "bob@globex.com", "name": "Bob", "department": [7]},
    ]
    assert [u["userid"] for u in only_seven["userlist"]] == ["bob@globex.com"]
    assert [u["userid"] for u in after["userlist"]] == ["bob@globex.com"]


async def test_qyapi_newcount_by_wecom_userid(exmail_sim: ExmailSim) -> None:
    """qyapi maps an email to its member's userid and counts that member's unread mail."""
    carol = "carol@globex.com"
    async with aiohttp.ClientSession() as http:
        api = await _api(exmail_sim, http)
        await api.control("api/users", {"tenant": CORP, "userid": carol, "wecom_userid": "CarolW"})
        for _ in range(2):
            await api.control("mail", {"tenant": CORP, "to": carol, "from": "a@b.cn"})
        found = await api(
            "POST", "user/get_userid_by_email", body={"email": "Carol@globex.com", "email_type": 1}
        )
        count = await api("POST", "exmail/mail/get_newcount", body={"userid": "CarolW"})
        missing = await api("POST", "user/get_userid_by_email", body={"email": "z@globex.com"})
        nobody = await api("POST", "exmail/mail/get_newcount", body={"userid": "Nobody"})
    assert found["userid"] == "CarolW"
    assert count["count"] == 2
    assert missing["errcode"] == nobody["errcode"] == 46004
