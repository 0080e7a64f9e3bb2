//! The Engine's service log stream made into the lines `docker service logs` prints: frames
//! (8-byte header: stream, 0, 0, 0, length) split back into lines, each line's details
//! (`com.docker.swarm.task.id=...`) turned into `<service>.<slot>.<task>@<node> | `. Pure.

use std::collections::HashMap;

/// Splits the multiplexed frames of a log stream into whole lines, across chunk boundaries.
#[derive(Default)]
pub struct Frames {
    pending: Vec<u8>,
    line: Vec<u8>,
}

impl Frames {
    /// Takes the next chunk off the wire; returns the lines it completes.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<String> {
        self.pending.extend_from_slice(chunk);
        let mut lines = Vec::new();
        loop {
            if self.pending.len() < 8 {
                break;
            }
            let size =
                u32::from_be_bytes([self.pending[4], self.pending[5], self.pending[6], self.pending[7]])
                    as usize;
            if self.pending.len() < 8 + size {
                break;
            }
            let payload: Vec<u8> = self.pending.drain(..8 + size).skip(8).collect();
            for byte in payload {
                if byte == b'\n' {
                    lines.push(String::from_utf8_lossy(&std::mem::take(&mut self.line)).into_owned());
                } else {
                    self.line.push(byte);
                }
            }
        }
        lines
    }
}

/// Where a task runs, for its lines' prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskPlace {
    /// Slot of a replicated service; None for global ones (the node names them then).
    pub slot: Option<i64>,
    pub node: String,
}

/// One line as the Engine gave it (`[timestamp ]details message`, details asked for).
#[derive(Debug, PartialEq, Eq)]
pub struct Line {
    pub timestamp: Option<String>,
    pub task_id: String,
    pub message: String,
}

pub fn parse(raw: &str, timestamps: bool) -> Line {
    let mut rest = raw;
    let mut timestamp = None;
    if timestamps && let Some((ts, after)) = rest.split_once(' ') {
        timestamp = Some(ts.to_string());
        rest = after;
    }
    let (details, message) = rest.split_once(' ').unwrap_or((rest, ""));
    let task_id = details
        .split(',')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == "com.docker.swarm.task.id")
        .map(|(_, v)| v.to_string())
        .unwrap_or_default();
    Line {
        timestamp,
        task_id,
        message: message.to_string(),
    }
}

/// `line` as `docker service logs` prints it: `[timestamp ]web.1.abcdefghijkl@vm-1 | message`.
pub fn format(service: &str, line: &Line, places: &HashMap<String, TaskPlace>) -> String {
    let short: String = line.task_id.chars().take(12).collect();
    let place = places.get(&line.task_id);
    let task = match place {
        Some(TaskPlace {
            slot: Some(slot),
            node,
        }) => format!("{service}.{slot}.{short}@{node}"),
        Some(TaskPlace { slot: None, node }) => format!("{service}.{node}.{short}@{node}"),
        None => format!("{service}.{short}"),
    };
    match &line.timestamp {
        Some(ts) => format!("{ts} {task} | {}", line.message),
        None => format!("{task} | {}", line.message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(stream: u8, payload: &str) -> Vec<u8> {
        let mut out = vec![stream, 0, 0, 0];
        out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        out.extend_from_slice(payload.as_bytes());
        out
    }

    #[test]
    fn frames_become_lines_whatever_the_chunks() {
        let mut wire = frame(1, "com.docker.swarm.task.id=t1 hello\n");
        wire.extend(frame(2, "com.docker.swarm.task.id=t2 half "));
        wire.extend(frame(2, "a line\n"));
        let mut frames = Frames::default();
        let mut lines = Vec::new();
        for chunk in wire.chunks(5) {
            lines.extend(frames.push(chunk));
        }
        assert_eq!(
            lines,
            [
                "com.docker.swarm.task.id=t1 hello",
                "com.docker.swarm.task.id=t2 half a line"
            ]
        );
    }

    #[test]
    fn a_line_names_its_task_as_docker_service_logs_does() {
        let places = HashMap::from([(
            "abcdefghijklmnopqrstuvwxy".to_string(),
            TaskPlace {
                slot: Some(2),
                node: "vm-1".into(),
            },
        )]);
        let raw = "2026-12-06T19:00:00.000000000Z com.docker.swarm.node.id=n1,com.docker.swarm.service.id=s1,com.docker.swarm.task.id=abcdefghijklmnopqrstuvwxy GET /hello world";
        let line = parse(raw, true);
        assert_eq!(line.message, "GET /hello world");
        assert_eq!(
            format("web", &line, &places),
            "2026-12-06T19:00:00.000000000Z web.2.abcdefghijkl@vm-1 | GET /hello world"
        );
        let plain = parse("com.docker.swarm.task.id=zz hi", false);
        assert_eq!(format("web", &plain, &places), "web.zz | hi");
    }
}
