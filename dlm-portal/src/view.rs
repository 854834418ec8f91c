//! The HTML of every page (maud: every value is escaped unless marked otherwise, and nothing
//! here is).
//!
//! Element ids are the pages' interface to their script and to browser tests: they stay
//! stable. docs/PORTAL.md lists them.

use crate::assets;
use crate::form::Typed;
use crate::live::{self, ClustersLive, JobLive};
use dlm_units::Bytes;
use dlm_wan::proto::{JobStatus, Mode};
use maud::{html, Markup, DOCTYPE};

/// The logged-in user, as every page's header shows them.
#[derive(Debug, Clone, Copy)]
pub struct Who<'a> {
    pub user: &'a str,
    /// The session's CSRF token, for the forms.
    pub csrf: &'a str,
}

/// The header's pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    Interactive,
    Autorun,
    Jobs,
    Downloads,
    Other,
}

/// A whole page: the header (the pages, the user's name, logout) and `body`.
pub fn page(title: &str, who: Option<Who<'_>>, nav: Nav, body: Markup) -> Markup {
    let link = |href: &str, text: &str, id: &str, here: bool| {
        html! { a id=(id) href=(href) aria-current=[here.then_some("page")] { (text) } }
    };
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · DLM portal" }
                link rel="stylesheet" href=(assets::CSS_PATH);
                script src=(assets::JS_PATH) defer {}
            }
            body {
                header #top {
                    a .brand href="/" { "DLM" span { "portal" } }
                    @if let Some(who) = who {
                        nav #nav {
                            (link("/interactive", "Interactive", "nav-interactive", nav == Nav::Interactive))
                            (link("/autorun", "Autorun", "nav-autorun", nav == Nav::Autorun))
                            (link("/jobs", "Jobs", "nav-jobs", nav == Nav::Jobs))
                            (link("/downloads", "Downloads", "nav-downloads", nav == Nav::Downloads))
                        }
                        div #account {
                            span #user-name { (who.user) }
                            form #logout-form method="post" action="/logout" {
                                input type="hidden" name="csrf" value=(who.csrf);
                                button #logout-button type="submit" { "Log out" }
                            }
                        }
                    }
                }
                main { (body) }
            }
        }
    }
}

/// The login page.
pub fn login(error: Option<&str>, token: &str, user: &str, next: &str) -> Markup {
    page(
        "Log in",
        None,
        Nav::Other,
        html! {
            section .login {
                h1 { "Log in" }
                p .lead { "With your cluster account: the same name and password as for ssh." }
                @if let Some(error) = error {
                    p #login-error .error role="alert" { (error) }
                }
                form #login-form method="post" action="/login" {
                    input type="hidden" name="token" value=(token);
                    input type="hidden" name="next" value=(next);
                    label for="login-user" { "User name" }
                    input #login-user type="text" name="user" value=(user) autocomplete="username" autofocus;
                    label for="login-password" { "Password" }
                    input #login-password type="password" name="password" autocomplete="current-password";
                    button #login-submit type="submit" { "Log in" }
                }
            }
        },
    )
}

/// The fields both job forms share: the program, its inputs, memory, arguments, outputs.
fn job_fields(typed: &Typed, max_upload: u64) -> Markup {
    html! {
        fieldset {
            legend { "Program" }
            label for="program-files" { "Program file: one executable, or C sources and headers" }
            input #program-files type="file" name="program" multiple;
            div .inline {
                input #dlmcc type="checkbox" name="dlmcc" checked[typed.dlmcc];
                label for="dlmcc" { "recompile with dlmcc on the node" }
            }
            label for="cflags" { "Compiler flags (with dlmcc; split at spaces)" }
            input #cflags type="text" name="cflags" value=(typed.cflags) placeholder="-O2 -DN=64";
            label for="input-files" { "Input files (placed beside the program)" }
            input #input-files type="file" name="inputs" multiple;
            p .hint { "All files together: at most " (Bytes(max_upload)) "." }
        }
        fieldset {
            legend { "Run" }
            label for="memory" { "Memory needed (local and far, e.g. 4G)" }
            input #memory type="text" name="memory" value=(typed.memory) placeholder="4G";
            label for="args" { "Arguments, one per line (each exactly as written; no shell)" }
            textarea #args name="args" rows="4" { (typed.args) }
            label for="outputs" { "Output files to keep, one per line (names in the program's directory)" }
            textarea #outputs name="outputs" rows="3" { (typed.outputs) }
        }
    }
}

/// The message of a refused form.
fn form_error(error: Option<&str>) -> Markup {
    html! {
        @if let Some(error) = error {
            p #form-error .error role="alert" { (error) }
        }
    }
}

/// The Autorun page: the WAN manager chooses where, by the mode.
pub fn autorun(who: Who<'_>, typed: &Typed, error: Option<&str>, max_upload: u64) -> Markup {
    let mode = |value: Mode, id: &str, text: &str, hint: &str| {
        html! {
            div .inline {
                input id=(id) type="radio" name="mode" value=(live::mode_name(value)) checked[typed.mode == value];
                label for=(id) { strong { (text) } " " span .hint { (hint) } }
            }
        }
    };
    page(
        "Autorun",
        Some(who),
        Nav::Autorun,
        html! {
            h1 { "Autorun" }
            p .lead { "The WAN manager finds a cluster that can give your program the memory it needs." }
            (form_error(error))
            form #autorun-form method="post" action="/autorun" enctype="multipart/form-data" {
                input type="hidden" name="csrf" value=(who.csrf);
                (job_fields(typed, max_upload))
                fieldset {
                    legend { "Mode" }
                    (mode(Mode::LocalFirst, "mode-local-first", "local-first",
                        "a node where it fits in local memory, else the best-fitting pool"))
                    (mode(Mode::Equalize, "mode-equalize", "equalize", "the cluster with the fewest DLM clients"))
                }
                button #run-button type="submit" { "Run" }
            }
        },
    )
}

/// The Interactive page: every cluster's nodes and servers, live; the user picks a node.
pub fn interactive(
    who: Who<'_>,
    clusters: Result<&ClustersLive, &str>,
    typed: &Typed,
    error: Option<&str>,
    max_upload: u64,
) -> Markup {
    page(
        "Interactive",
        Some(who),
        Nav::Interactive,
        html! {
            h1 { "Interactive" }
            p .lead { "Every cluster's compute nodes and memory servers, as the WAN manager sees them now. "
                "Pick a node, then run your program there." }
            p #live-error .error role="status" hidden {}
            @match clusters {
                Ok(live) => { (self::clusters(live, typed.place.as_deref())) }
                Err(message) => { p #wan-error .error role="alert" { (message) } }
            }
            (form_error(error))
            form #interactive-form method="post" action="/interactive" enctype="multipart/form-data" {
                input type="hidden" name="csrf" value=(who.csrf);
                (job_fields(typed, max_upload))
                button #run-button type="submit" { "Run on the chosen node" }
            }
        },
    )
}

/// The clusters' section; `chosen` is the node whose radio button is checked.
pub fn clusters(live: &ClustersLive, chosen: Option<&str>) -> Markup {
    html! {
        section #clusters data-poll="/api/clusters" {
            p .hint { "Queued jobs: " span #queued { (live.queued) } " · updated live" }
            @if live.clusters.is_empty() {
                p #no-clusters { "The WAN manager has no clusters." }
            }
            @for c in &live.clusters {
                div .cluster data-cluster=(c.name) {
                    h2 {
                        (c.name) " "
                        span .reach data-field="reach" data-reach=(c.reach) { (c.reach) }
                    }
                    p .summary {
                        "DLM clients: " span data-field="clients" { (c.clients) }
                        " · pool available: " span data-field="pool_available" { (c.pool_available) }
                    }
                    p .error data-field="error" hidden[c.error.is_none()] { (c.error.as_deref().unwrap_or_default()) }
                    table .nodes {
                        thead { tr {
                            th { span .visually-hidden { "choose" } } th { "Node" } th .num { "Available" }
                            th .num { "Free" } th .num { "Load" } th { "Busy" } th .num { "Jobs" } th .num { "Cap" }
                        } }
                        tbody {
                            @for n in &c.nodes {
                                @let id = format!("place-{}", n.place);
                                tr .node .busy[n.busy] data-place=(n.place) {
                                    td { input id=(id) type="radio" name="place" value=(n.place)
                                        form="interactive-form" checked[chosen == Some(n.place.as_str())]; }
                                    td { label for=(id) { (n.host) } }
                                    td .num data-field="available" { (n.available) }
                                    td .num data-field="free" { (n.free) }
                                    td .num data-field="load" { (n.load) }
                                    td data-field="busy" { @if n.busy { "busy" } @else { "-" } }
                                    td .num data-field="jobs" { (n.jobs) }
                                    td .num { (n.cap) }
                                }
                            }
                        }
                    }
                    @if !c.servers.is_empty() {
                        table .servers {
                            thead { tr { th { "Memory server" } th { "State" } th { "Used" } } }
                            tbody {
                                @for s in &c.servers {
                                    tr .server data-server=(s.key) {
                                        td { (s.host) }
                                        td data-field="state" { (s.state) }
                                        td {
                                            meter data-field="meter" value=(s.used_bytes) max=(s.cap_bytes.max(1)) {}
                                            " " span data-field="used" { (s.used) }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// A command line for reading: each argument that holds white space, or is empty, in quotes.
pub fn command_text(command: &[String]) -> String {
    let quoted = command.iter().map(|arg| {
        if arg.is_empty() || arg.chars().any(char::is_whitespace) {
            format!("'{arg}'")
        } else {
            arg.clone()
        }
    });
    quoted.collect::<Vec<_>>().join(" ")
}

/// One job of the Jobs page.
pub fn job_row(job: &JobStatus) -> Markup {
    let state = live::state_name(job.state);
    html! {
        tr .job-row id=(format!("job-row-{}", job.id)) data-state=(state) {
            td { a .job-link href=(format!("/jobs/{}", job.id)) { (job.id) } }
            td { span .state data-state=(state) { (state) } }
            td .num { (Bytes(job.memory_bytes)) }
            td .nowrap { (live::mode_name(job.mode)) }
            td { (live::place(job)) }
            td { (live::servers(job)) }
            td .num { (live::local_ratio(job)) }
            td .outcome { (live::outcome(job)) }
            td { code { (command_text(&job.command)) } }
        }
    }
}

/// The Jobs page: the user's jobs, newest first (or why they cannot be listed).
pub fn jobs(who: Who<'_>, jobs: Result<&[JobStatus], &str>) -> Markup {
    page(
        "Jobs",
        Some(who),
        Nav::Jobs,
        html! {
            h1 { "Your jobs" }
            @match jobs {
                Err(message) => p #wan-error .error role="alert" { (message) },
                Ok([]) => p #no-jobs { "No jobs yet: start one from " a href="/autorun" { "Autorun" }
                    " or " a href="/interactive" { "Interactive" } "." },
                Ok(jobs) => table #jobs-table {
                    thead { tr {
                        th { "Job" } th { "State" } th .num { "Memory" } th { "Mode" } th { "Cluster/node" }
                        th { "Servers" } th .num { "Local" } th { "Exit/reason" } th { "Command" }
                    } }
                    tbody { @for job in jobs { (job_row(job)) } }
                },
            }
        },
    )
}

/// A job's page: its state, and the live view that the script keeps up to date.
pub fn job(who: Who<'_>, job: &JobStatus, live: &JobLive) -> Markup {
    let id = job.id;
    let stats = live.stats.as_ref();
    let text = |pick: fn(&crate::live::StatsLive) -> &str| stats.map_or("-", pick);
    let (resident, budget) = stats.map_or((0, 1), |s| (s.resident, s.budget.max(1)));
    let servers = stats.map_or(&[][..], |s| &s.servers);
    let most_held = servers.iter().map(|s| s.bytes).max().unwrap_or(1).max(1);
    page(
        &format!("Job {id}"),
        Some(who),
        Nav::Jobs,
        html! {
            h1 { "Job " (id) " " span #job-state .state data-state=(live.state) { (live.state) } }
            p { code #job-command { (command_text(&job.command)) } }
            p #live-error .error role="status" hidden {}
            p #session-expired .error role="alert" hidden {
                "Your session has ended; " a href=(format!("/login?next=/jobs/{id}")) { "log in again" } "."
            }
            dl .facts {
                dt { "Elapsed" } dd #job-elapsed { (live.elapsed) }
                dt { "Where" } dd #job-place { (live.place) }
                dt { "Memory asked" }
                dd #job-memory { (Bytes(job.memory_bytes)) " (" (live::mode_name(job.mode)) ")" }
                dt { "Exit/reason" } dd #job-outcome { (live.outcome) }
            }
            div .actions {
                @if !job.state.is_final() {
                    form #cancel-form method="post" action=(format!("/jobs/{id}/cancel")) {
                        input type="hidden" name="csrf" value=(who.csrf);
                        button #cancel-button .danger type="submit" { "Cancel job" }
                    }
                }
                a #job-files href=(format!("/downloads/{id}")) { "Files of job " (id) }
            }
            section #job-live data-job=(id) data-final=(live.is_final) data-poll=(format!("/api/jobs/{id}")) {
                h2 { "Memory" }
                p #stats-none hidden[stats.is_some()] {
                    "No paging statistics (yet): they come while a DLM program runs."
                }
                div .memory {
                    meter #memory-bar value=(resident) max=(budget) {}
                    " " span #memory-text { (text(|s| &s.memory)) }
                }
                div .plots {
                    figure {
                        figcaption {
                            "Faults per second · total " span #faults-total { (stats.map_or(0, |s| s.faults)) }
                        }
                        canvas #faults-plot width="560" height="200" data-points="0" {}
                    }
                    figure {
                        figcaption {
                            span .key .fetched { "fetched " span #fetched-text { (text(|s| &s.fetched_text)) } }
                            " · "
                            span .key .written {
                                "written back " span #written-back-text { (text(|s| &s.written_back_text)) }
                            }
                        }
                        canvas #traffic-plot width="560" height="200" data-points="0" {}
                    }
                }
                h2 { "Bytes per memory server" }
                div #servers-bars {
                    @for s in servers {
                        div .bar data-server=(s.host) {
                            span .host { (s.host) }
                            meter value=(s.bytes) max=(most_held) {}
                            span .text { (s.text) }
                        }
                    }
                }
                h2 { "Standard output " span .hint { "(the last " (Bytes(crate::wan::TAIL_BYTES)) ")" } }
                pre #stdout-tail .log { (live.stdout) }
                h2 { "Standard error " span .hint { "(the last " (Bytes(crate::wan::TAIL_BYTES)) ")" } }
                pre #stderr-tail .log { (live.stderr) }
            }
        },
    )
}

/// One file of a job's folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FolderFile {
    pub name: String,
    pub bytes: u64,
    pub href: String,
}

/// The Downloads page: one folder per job.
pub fn downloads(who: Who<'_>, jobs: Result<&[JobStatus], &str>) -> Markup {
    page(
        "Downloads",
        Some(who),
        Nav::Downloads,
        html! {
            h1 { "Downloads" }
            p .lead { "One folder per job: its outputs (once it has ended), its standard output and error." }
            @match jobs {
                Err(message) => p #wan-error .error role="alert" { (message) },
                Ok([]) => p #no-jobs { "No jobs yet." },
                Ok(jobs) => table #downloads-table {
                    thead { tr { th { "Folder" } th { "State" } th { "Command" } th { "Files" } th { "Archive" } } }
                    tbody {
                        @for job in jobs {
                            tr .folder-row id=(format!("folder-row-{}", job.id)) {
                                td { a .folder-link href=(format!("/downloads/{}", job.id)) { "job-" (job.id) } }
                                @let state = live::state_name(job.state);
                                td { span .state data-state=(state) { (state) } }
                                td { code { (command_text(&job.command)) } }
                                td {
                                    @if !job.state.is_final() && !job.outputs.is_empty() { "outputs when it ends; " }
                                    @else if !job.outputs.is_empty() { (job.outputs.join(", ")) "; " }
                                    "stdout " (Bytes(job.stdout_bytes)) ", stderr " (Bytes(job.stderr_bytes))
                                }
                                td { a .archive-link href=(format!("/downloads/{}/archive", job.id)) download
                                    { "job-" (job.id) ".tar" } }
                            }
                        }
                    }
                },
            }
        },
    )
}

/// A job's folder: each file, and the whole folder as one archive.
pub fn folder(who: Who<'_>, job: &JobStatus, files: &[FolderFile], note: Option<&str>) -> Markup {
    let id = job.id;
    page(
        &format!("Files of job {id}"),
        Some(who),
        Nav::Downloads,
        html! {
            h1 { "Files of job " a href=(format!("/jobs/{id}")) { (id) } }
            p { code { (command_text(&job.command)) } }
            @if let Some(note) = note {
                p #folder-note .hint { (note) }
            }
            ul #folder-files {
                @for file in files {
                    li {
                        a .file-link href=(file.href) download { (file.name) }
                        " " span .hint { (Bytes(file.bytes)) }
                    }
                }
            }
            p {
                a #folder-archive .button href=(format!("/downloads/{id}/archive")) download {
                    "Download job-" (id) ".tar"
                }
            }
        },
    )
}

/// Not found: an unknown page, an unknown job, or another user's (the same words for each).
pub fn not_found(who: Option<Who<'_>>, what: &str) -> Markup {
    page(
        "Not found",
        who,
        Nav::Other,
        html! {
            h1 #not-found { "Not found" }
            p #not-found-message { (what) }
            p { a href="/jobs" { "Your jobs" } }
        },
    )
}

/// A page that could not be made, and why.
pub fn failure(who: Option<Who<'_>>, title: &str, message: &str) -> Markup {
    page(
        title,
        who,
        Nav::Other,
        html! {
            h1 { (title) }
            p #page-error .error role="alert" { (message) }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use dlm_wan::proto::{JobId, JobState, Placement, Through};

    fn job() -> JobStatus {
        JobStatus {
            id: JobId(12),
            user: "alice".into(),
            uid: 1001,
            state: JobState::Done,
            reason: None,
            exit_code: Some(0),
            memory_bytes: 6 << 30,
            mode: Mode::Equalize,
            command: vec!["./sim".into(), "<b>bold</b>".into(), "two words".into()],
            outputs: vec!["result.dat".into()],
            placement: Some(Placement {
                cluster: "osaka".into(),
                node: "node01".into(),
                through: Through::Pool,
                local_bytes: 2 << 30,
                pool_bytes: 4 << 30,
                local_ratio: 1.0 / 3.0,
                servers: vec!["mem01".into()],
            }),
            queue_position: None,
            submitted: 1,
            started: Some(2),
            ended: Some(3),
            stdout_bytes: 10,
            stderr_bytes: 0,
        }
    }

    #[test]
    fn a_job_row_shows_each_column_escaped() {
        let html = job_row(&job()).into_string();
        assert_eq!(
            html,
            "<tr class=\"job-row\" id=\"job-row-12\" data-state=\"done\">\
             <td><a class=\"job-link\" href=\"/jobs/12\">12</a></td>\
             <td><span class=\"state\" data-state=\"done\">done</span></td>\
             <td class=\"num\">6 GiB</td>\
             <td class=\"nowrap\">equalize</td>\
             <td>osaka/node01</td>\
             <td>mem01</td>\
             <td class=\"num\">33%</td>\
             <td class=\"outcome\">exit 0</td>\
             <td><code>./sim &lt;b&gt;bold&lt;/b&gt; 'two words'</code></td>\
             </tr>"
        );
    }

    #[test]
    fn pages_carry_the_session_token_and_the_users_name() {
        let who = Who { user: "alice", csrf: "0123" };
        let html =
            autorun(who, &Typed::default(), Some("memory needed is missing; fill it in"), 256 << 20).into_string();
        for needle in [
            "<span id=\"user-name\">alice</span>",
            "<input type=\"hidden\" name=\"csrf\" value=\"0123\">",
            "<form id=\"autorun-form\" method=\"post\" action=\"/autorun\" enctype=\"multipart/form-data\">",
            "<p class=\"error\" id=\"form-error\" role=\"alert\">memory needed is missing; fill it in</p>",
            "at most 256 MiB",
            "<a id=\"nav-autorun\" href=\"/autorun\" aria-current=\"page\">",
        ] {
            assert!(html.contains(needle), "{needle} not in {html}");
        }
        let html = login(None, "t", "<script>", "/jobs").into_string();
        assert!(html.contains("value=\"&lt;script&gt;\""), "{html}");
        assert!(!html.contains("user-name"));
    }

    #[test]
    fn command_lines_quote_what_a_reader_could_not_split() {
        assert_eq!(command_text(&["a".into(), "".into(), "b c".into()]), "a '' 'b c'");
    }
}
