//! The state message an OCI runtime sends a seccomp agent with the notify
//! descriptor (runtime spec, `linux.seccomp.listenerPath`): parsed into what the
//! agent needs, every field checked. Self-contained (only `serde_json`), so the
//! fuzz target `oci_state` compiles it as is.

use serde_json::{Map, Value};

/// The largest state message taken (crun's are about 2 KiB; annotations can
/// make them larger).
pub const MAX_STATE: usize = 1 << 20;

/// What a runtime said about its container.
#[derive(Debug, Clone, PartialEq)]
pub struct State {
    /// The container's id: 1 to 64 letters, digits, `-`, `_`, `.`, not
    /// starting with `.` (it names a directory).
    pub id: String,
    /// The container's process (0 for an exec).
    pub pid: u32,
    /// `creating`/`created` for a run, `running` for an exec.
    pub status: String,
    /// The bundle (a run's; `.` for an exec).
    pub bundle: String,
    pub annotations: Map<String, Value>,
    /// The profile's `listenerMetadata`, split on white space.
    pub metadata: Vec<String>,
}

/// Parses the bytes received so far: `Ok(None)` while they are not a complete
/// JSON value yet (crun keeps its end open: the message is complete once it
/// parses), an error for a message that can never be valid.
pub fn parse(data: &[u8]) -> Result<Option<State>, String> {
    if data.len() > MAX_STATE {
        return Err(format!("a state message over {MAX_STATE} bytes"));
    }
    let Ok(state) = serde_json::from_slice::<Value>(data) else {
        return Ok(None);
    };
    if !state.is_object() {
        return Err("the state message is not a JSON object".into());
    }
    let st = &state["state"];
    let id = st["id"].as_str().unwrap_or_default().to_string();
    let valid = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        && !id.starts_with('.');
    if !valid {
        return Err(format!(
            "container id {id:?}: 1 to 64 letters, digits, '-', '_', '.'"
        ));
    }
    let pid = state["pid"]
        .as_u64()
        .or_else(|| st["pid"].as_u64())
        .unwrap_or(0);
    let pid = u32::try_from(pid).map_err(|_| format!("pid {pid} is out of range"))?;
    Ok(Some(State {
        id,
        pid,
        status: st["status"].as_str().unwrap_or_default().to_string(),
        bundle: st["bundle"].as_str().unwrap_or_default().to_string(),
        annotations: st["annotations"].as_object().cloned().unwrap_or_default(),
        metadata: state["metadata"]
            .as_str()
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_string)
            .collect(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crun_s_message_and_bad_ones() {
        let crun =
            br#"{"ociVersion":"0.2.0","fds":["seccompFd"],"pid":4242,"metadata":"--mtu 9000",
            "state":{"ociVersion":"0.2.0","id":"web-1","status":"creating","pid":4242,
            "bundle":"/b/web","annotations":{"netcell.addr":"10.0.0.2/24"}}}"#;
        assert_eq!(parse(&crun[..40]), Ok(None));
        let s = parse(crun).unwrap().unwrap();
        assert_eq!(
            (s.id.as_str(), s.pid, s.bundle.as_str()),
            ("web-1", 4242, "/b/web")
        );
        assert_eq!(s.metadata, ["--mtu", "9000"]);
        assert_eq!(s.annotations["netcell.addr"], "10.0.0.2/24");
        for (bad, why) in [
            (&br#"{"state":{"id":"../x"}}"#[..], "container id"),
            (br#"{"state":{"id":".hidden"}}"#, "container id"),
            (br#"{"state":{"id":"a","pid":99999999999}}"#, "out of range"),
            (br#"[1,2]"#, "not a JSON object"),
        ] {
            let e = parse(bad).unwrap_err();
            assert!(e.contains(why), "{e}");
        }
    }
}
