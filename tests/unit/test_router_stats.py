"""Parsing HAProxy 2.6 runtime answers: `show stat` CSV and the master CLI's `show proc`."""

from __future__ import annotations

import pytest

from slipway.router.stats import ProcInfo, ServerStat, parse_show_proc, parse_show_stat

# The header line of HAProxy 2.6's `show stat`: it starts with "# " and, like every row,
# ends with a comma.
HEADER = (
    "# "
    "pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,"
    "wredis,status,weight,act,bck,chkfail,chkdown,lastchg,downtime,qlimit,pid,iid,sid,throttle,"
    "lbtot,tracked,type,rate,rate_lim,rate_max,check_status,check_code,check_duration,hrsp_1xx,"
    "hrsp_2xx,hrsp_3xx,hrsp_4xx,hrsp_5xx,hrsp_other,hanafail,req_rate,req_rate_max,req_tot,"
    "cli_abrt,srv_abrt,comp_in,comp_out,comp_byp,comp_rsp,lastsess,last_chk,last_agt,qtime,"
    "ctime,rtime,ttime,agent_status,agent_code,agent_duration,check_desc,agent_desc,check_rise,"
    "check_fall,check_health,agent_rise,agent_fall,agent_health,addr,cookie,mode,algo,"
    "conn_rate,conn_rate_max,conn_tot,intercepted,dcon,dses,wrew,connect,reuse,cache_lookups,"
    "cache_hits,srv_icur,src_ilim,qtime_max,ctime_max,rtime_max,ttime_max,eint,idle_conn_cur,"
    "safe_conn_cur,used_conn_cur,need_conn_est,uweight,agg_server_status,agg_check_status,srid,"
)
FIELDS = HEADER.removeprefix("# ").removesuffix(",").split(",")


def row(**values: object) -> str:
    unknown = set(values) - set(FIELDS)
    assert not unknown, unknown
    return ",".join(str(values.get(name, "")) for name in FIELDS) + ","


def server_row(
    px: str,
    sv: str,
    status: str,
    weight: int,
    check_status: str,
    scur: int = 0,
    qcur: int = 0,
    stot: int = 0,
    req_tot: int | str = "",
    sid: int = 1,
    port: int = 40001,
) -> str:
    return row(
        pxname=px, svname=sv, qcur=qcur, qmax=0, scur=scur, smax=3, stot=stot, bin=0, bout=0,
        dresp=0, econ=0, eresp=0, wretr=0, wredis=0, status=status, weight=weight, act=1, bck=0,
        chkfail=0, chkdown=0, lastchg=12, downtime=0, pid=1, iid=3, sid=sid, lbtot=stot, type=2,
        rate=0, rate_max=4, check_status=check_status, check_code=200, check_duration=1,
        hrsp_2xx=stot, req_tot=req_tot, cli_abrt=0, srv_abrt=0, lastsess=1,
        last_chk="OK", qtime=0, ctime=0, rtime=1, ttime=1, check_desc="Layer7 check passed",
        check_rise=2, check_fall=3, check_health=4, addr=f"127.0.0.1:{port}", mode="http",
        uweight=weight, agg_server_status=0, agg_check_status=0, srid=1,
    )  # fmt: skip


SHOW_STAT = "\n".join(
    [
        HEADER,
        row(
            pxname="fe_8080_127_0_0_1",
            svname="FRONTEND",
            scur=2,
            smax=5,
            slim=4096,
            stot=51,
            status="OPEN",
            pid=1,
            iid=2,
            type=0,
            req_tot=51,
            mode="http",
        ),  # fmt: skip
        server_row("app_shop", "shop-r3-web-1", "UP", 100, "L7OK", scur=1, stot=40, req_tot=44),
        server_row("app_shop", "shop-r3-web-2", "UP 1/2", 0, "L7OK", sid=2, port=40002),
        server_row("app_shop", "shop-r2-web-1", "DRAIN", 0, "L7OK", qcur=2, stot=9, sid=3),
        server_row("app_shop", "shop-r4-web-1", "DOWN", 0, "L4CON", sid=4, req_tot=""),
        server_row("app_shop", "shop-r4-web-2", "MAINT", 0, "", sid=5),
        row(
            pxname="app_shop",
            svname="BACKEND",
            scur=1,
            stot=49,
            status="UP",
            weight=100,
            act=1,
            bck=0,
            pid=1,
            iid=3,
            type=1,
            req_tot=53,
            mode="http",
            algo="roundrobin",
        ),  # fmt: skip
        server_row("app_blog", "shop-r3-web-1", "DOWN", 100, "L7STS", stot=7),
        row(pxname="app_blog", svname="BACKEND", status="DOWN", type=1),
        "",
    ]
)


def test_parse_show_stat_returns_only_the_servers_of_one_backend() -> None:
    servers = parse_show_stat(SHOW_STAT, "app_shop")
    assert sorted(servers) == [
        "shop-r2-web-1",
        "shop-r3-web-1",
        "shop-r3-web-2",
        "shop-r4-web-1",
        "shop-r4-web-2",
    ]
    assert "FRONTEND" not in servers and "BACKEND" not in servers


def test_parse_show_stat_reads_status_weight_sessions_and_checks() -> None:
    web1 = parse_show_stat(SHOW_STAT, "app_shop")["shop-r3-web-1"]
    assert web1 == ServerStat(
        name="shop-r3-web-1",
        status="UP",
        weight=100,
        scur=1,
        qcur=0,
        check_status="L7OK",
        req_tot=44,
    )
    assert web1.up and web1.checked_ok and not web1.idle


def test_same_server_name_in_another_backend_is_kept_apart() -> None:
    blog = parse_show_stat(SHOW_STAT, "app_blog")
    assert list(blog) == ["shop-r3-web-1"]
    assert blog["shop-r3-web-1"].status == "DOWN"
    assert blog["shop-r3-web-1"].check_status == "L7STS"


def test_request_count_falls_back_to_sessions_when_req_tot_is_empty() -> None:
    servers = parse_show_stat(SHOW_STAT, "app_shop")
    assert servers["shop-r2-web-1"].req_tot == 9  # req_tot empty: stot


def test_unknown_backend_gives_no_servers() -> None:
    assert parse_show_stat(SHOW_STAT, "app_nope") == {}


def test_empty_answer_gives_no_servers() -> None:
    assert parse_show_stat("", "app_shop") == {}


@pytest.mark.parametrize(
    ("name", "up", "checked_ok", "idle"),
    [
        ("shop-r3-web-1", True, True, False),  # serving
        ("shop-r3-web-2", True, False, True),  # UP but going down (1/2): no new traffic
        ("shop-r2-web-1", True, False, False),  # draining, requests queued
        ("shop-r4-web-1", False, False, True),  # down, refused connections
        ("shop-r4-web-2", False, False, True),  # maintenance
    ],
)
def test_server_state_properties(name: str, up: bool, checked_ok: bool, idle: bool) -> None:
    server = parse_show_stat(SHOW_STAT, "app_shop")[name]
    assert (server.up, server.checked_ok, server.idle) == (up, checked_ok, idle)


def test_checked_ok_while_next_check_is_in_progress() -> None:
    text = HEADER + "\n" + server_row("app_shop", "w1", "UP", 100, "* L7OK")
    assert parse_show_stat(text, "app_shop")["w1"].checked_ok


@pytest.mark.parametrize(
    ("status", "check", "agrees"),
    [
        ("UP", "L7OK", True),  # checked and passed
        ("UP", "* L7OK", True),  # passed, next check running
        ("UP 1/2", "INI", True),  # just added: HAProxy has not checked it yet
        ("UP", "* INI", True),  # its first check is running
        ("UP 2/3", "L4CON", False),  # failed a check: must pass again first
        ("DOWN", "L7STS", False),
        ("MAINT", "INI", False),
    ],
)
def test_haproxy_agrees_with_our_probes_unless_it_saw_a_failure(
    status: str, check: str, agrees: bool
) -> None:
    text = HEADER + "\n" + server_row("app_shop", "w1", status, 0, check)
    assert parse_show_stat(text, "app_shop")["w1"].agrees is agrees


SHOW_PROC = """\
#<PID>          <type>          <reloads>       <uptime>        <version>      
9132            master          2 [failed: 1]   0d00h00m02s     2.6.12-1+deb12u4
# workers
9222            worker          1               0d00h00m02s     2.6.12-1+deb12u4
# programs

"""  # noqa: W291 - HAProxy pads the header line with spaces

SHOW_PROC_OLD_WORKERS = """\
#<PID>          <type>          <reloads>       <uptime>        <version>      
9132            master          3 [failed: 1]   0d00h01m10s     2.6.12-1+deb12u4
# workers
9301            worker          0               0d00h00m01s     2.6.12-1+deb12u4
9302            worker          0               0d00h00m01s     2.6.12-1+deb12u4
# old workers
9222            worker          1               0d00h01m08s     2.6.12-1+deb12u4
# programs

"""  # noqa: W291


def test_parse_show_proc_reads_master_reloads_failures_and_workers() -> None:
    assert parse_show_proc(SHOW_PROC) == ProcInfo(
        master_pid=9132, reloads=2, failed=1, workers=(9222,)
    )


def test_parse_show_proc_does_not_count_old_workers() -> None:
    info = parse_show_proc(SHOW_PROC_OLD_WORKERS)
    assert info.workers == (9301, 9302)
    assert 9222 not in info.workers
    assert (info.master_pid, info.reloads, info.failed) == (9132, 3, 1)


def test_parse_show_proc_without_failures() -> None:
    text = SHOW_PROC.replace("2 [failed: 1]", "0            ")
    assert parse_show_proc(text) == ProcInfo(9132, 0, 0, (9222,))


def test_parse_show_proc_with_no_workers_yet() -> None:
    text = "\n".join(line for line in SHOW_PROC.splitlines() if "worker " not in line)
    info = parse_show_proc(text)
    assert info.workers == ()
    assert info.master_pid == 9132
