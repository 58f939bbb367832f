//! The frames the benchmarks encode and decode, built with toolwire-core's encoders.
//!
//! Contents are meant to look like real traffic: tool definitions with JSON Schemas of the kind
//! MCP servers publish, a GPIO call with a tiny argument object, a `write_file` call whose
//! arguments are 4 KiB of source text (newlines and quotes escaped), and a directory listing as
//! a result. JSON is compact, as every encoder on the wire writes it.

use std::sync::LazyLock;

use toolwire_core::codec::{self, EncodeError};
use toolwire_core::frame::{Annotations, Execute, Register, Request};
use toolwire_core::{Encoding, Id, Json, List, Str, ToolDef};

/// The frames benchmarked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameKind {
    /// `register` request with the ten [`TOOLS`].
    Register,
    /// `execute` request of `gpio_write` with 20 bytes of arguments.
    ExecuteSmall,
    /// `execute` request of `write_file` with 4096 bytes of arguments.
    Execute4k,
    /// A result: a directory listing of eight entries.
    Result,
}

impl FrameKind {
    /// Every kind, in the order the benchmarks report them.
    pub const ALL: [FrameKind; 4] = [
        FrameKind::Register,
        FrameKind::ExecuteSmall,
        FrameKind::Execute4k,
        FrameKind::Result,
    ];

    /// The name used in benchmark ids.
    pub const fn name(self) -> &'static str {
        match self {
            FrameKind::Register => "register",
            FrameKind::ExecuteSmall => "execute-small",
            FrameKind::Execute4k => "execute-4k",
            FrameKind::Result => "result",
        }
    }

    /// The JSON-RPC id the frame carries.
    pub const fn id(self) -> u64 {
        match self {
            FrameKind::Register => 1,
            FrameKind::ExecuteSmall => 42,
            FrameKind::Execute4k => 43,
            FrameKind::Result => 44,
        }
    }

    /// The frame encoded with toolwire-core (each call encodes it afresh).
    pub fn frame(self, encoding: Encoding) -> Vec<u8> {
        let mut out = vec![0u8; 64 * 1024];
        let n = encode(self, encoding, &mut out).expect("fixture frames fit 64 KiB");
        out.truncate(n);
        out
    }
}

/// Encodes `kind` in `encoding` with toolwire-core into `out`.
pub fn encode(kind: FrameKind, encoding: Encoding, out: &mut [u8]) -> Result<usize, EncodeError> {
    let id = Id::Num(kind.id());
    match kind {
        FrameKind::Register => {
            codec::encode_request(encoding, id, &Request::Register(register()), out)
        }
        FrameKind::ExecuteSmall => {
            codec::encode_request(encoding, id, &Request::Execute(execute_small()), out)
        }
        FrameKind::Execute4k => {
            codec::encode_request(encoding, id, &Request::Execute(execute_4k()), out)
        }
        FrameKind::Result => codec::encode_result(encoding, id, &result_value(), out),
    }
}

/// The arguments of the small `execute` (20 bytes).
pub const SMALL_ARGUMENTS: &str = r#"{"pin":13,"on":true}"#;

/// The small `execute`: set GPIO 13, 5 s deadline.
pub fn execute_small() -> Execute<'static> {
    Execute {
        tool: Str::new("gpio_write"),
        arguments: Json::trusted(SMALL_ARGUMENTS.as_bytes()),
        deadline_ms: Some(5000),
    }
}

/// Size of the large `execute`'s arguments object.
pub const LARGE_ARGUMENTS_LEN: usize = 4096;

/// Source text the large arguments carry (cycled until the object is 4 KiB).
const SOURCE: &str = r#"//! Driver for the TMP117 digital temperature sensor (I2C, 16-bit, 7.8125 mC per LSB).
use embedded_hal::i2c::I2c;

/// Default 7-bit address (ADD0 tied to ground).
pub const ADDRESS: u8 = 0x48;
const REG_TEMP: u8 = 0x00;
const REG_CONFIG: u8 = 0x01;
const REG_DEVICE_ID: u8 = 0x0F;

#[derive(Debug)]
pub enum Error<E> {
    /// The bus failed.
    Bus(E),
    /// Not a TMP117: "device id mismatch".
    WrongDevice(u16),
}

pub struct Tmp117<I> {
    i2c: I,
    address: u8,
}

impl<I: I2c> Tmp117<I> {
    pub fn new(i2c: I, address: u8) -> Result<Self, Error<I::Error>> {
        let mut dev = Tmp117 { i2c, address };
        let id = dev.read(REG_DEVICE_ID)?;
        if id & 0x0FFF != 0x0117 {
            return Err(Error::WrongDevice(id));
        }
        Ok(dev)
    }

    /// Temperature in milli-degrees Celsius.
    pub fn read_milli_c(&mut self) -> Result<i32, Error<I::Error>> {
        let raw = self.read(REG_TEMP)? as i16;
        Ok(i32::from(raw) * 78125 / 10000)
    }

    fn read(&mut self, reg: u8) -> Result<u16, Error<I::Error>> {
        let mut buf = [0u8; 2];
        self.i2c
            .write_read(self.address, &[reg], &mut buf)
            .map_err(Error::Bus)?;
        Ok(u16::from_be_bytes(buf))
    }
}
"#;

fn large_arguments_with(content: &str) -> String {
    let content = serde_json::to_string(content).expect("a string serializes");
    format!(r#"{{"path":"src/drivers/tmp117.rs","content":{content},"create_dirs":true}}"#)
}

static LARGE_ARGUMENTS: LazyLock<String> = LazyLock::new(|| {
    let mut content = String::new();
    for line in SOURCE.lines().cycle() {
        let before = content.len();
        content.push_str(line);
        content.push('\n');
        if large_arguments_with(&content).len() > LARGE_ARGUMENTS_LEN {
            content.truncate(before);
            break;
        }
    }
    // Pad to exactly 4 KiB with spaces (one byte each, nothing to escape).
    let pad = LARGE_ARGUMENTS_LEN - large_arguments_with(&content).len();
    content.extend(core::iter::repeat_n(' ', pad));
    large_arguments_with(&content)
});

/// The large arguments object (exactly [`LARGE_ARGUMENTS_LEN`] bytes).
pub fn large_arguments() -> &'static str {
    &LARGE_ARGUMENTS
}

/// The large `execute`: write a 4 KiB source file, 30 s deadline.
pub fn execute_4k() -> Execute<'static> {
    Execute {
        tool: Str::new("write_file"),
        arguments: Json::trusted(large_arguments().as_bytes()),
        deadline_ms: Some(30_000),
    }
}

/// The result: a directory listing.
pub const RESULT: &str = concat!(
    r#"{"entries":["#,
    r#"{"name":"boot.log","size":18234,"dir":false},"#,
    r#"{"name":"config","size":4096,"dir":true},"#,
    r#"{"name":"sensor-2026-11-21.csv","size":1048576,"dir":false},"#,
    r#"{"name":"sensor-2026-11-22.csv","size":524288,"dir":false},"#,
    r#"{"name":"firmware","size":4096,"dir":true},"#,
    r#"{"name":"calibration.json","size":1532,"dir":false},"#,
    r#"{"name":"crash-0017.dump","size":65536,"dir":false},"#,
    r#"{"name":"README.txt","size":877,"dir":false}"#,
    r#"],"truncated":false}"#
);

/// The result value.
pub fn result_value() -> Json<'static> {
    Json::trusted(RESULT.as_bytes())
}

/// The `register` request.
pub fn register() -> Register<'static> {
    Register {
        tools: List::from_slice(&TOOLS),
    }
}

const fn tool(
    name: &'static str,
    description: &'static str,
    input_schema: &'static str,
    output_schema: Option<&'static str>,
    annotations: Annotations,
) -> ToolDef<'static> {
    ToolDef {
        name: Str::new(name),
        description: Str::new(description),
        input_schema: Json::trusted(input_schema.as_bytes()),
        output_schema: match output_schema {
            Some(s) => Some(Json::trusted(s.as_bytes())),
            None => None,
        },
        annotations,
    }
}

const READ_ONLY: Annotations = Annotations {
    read_only: true,
    destructive: false,
    idempotent: true,
};
const IDEMPOTENT: Annotations = Annotations {
    read_only: false,
    destructive: false,
    idempotent: true,
};
const DESTRUCTIVE: Annotations = Annotations {
    read_only: false,
    destructive: true,
    idempotent: false,
};

/// Ten tools as a device and a host node would register them.
pub static TOOLS: [ToolDef<'static>; 10] = [
    tool(
        "read_sensor",
        "Read a temperature channel of the on-board ADC, in milli-degrees Celsius. Channels 0-3 are the external probes; channel 4 is the die sensor.",
        r#"{"type":"object","properties":{"channel":{"type":"integer","minimum":0,"maximum":4,"description":"ADC channel"},"samples":{"type":"integer","minimum":1,"maximum":64,"default":4,"description":"Readings to average"}},"required":["channel"],"additionalProperties":false}"#,
        Some(
            r#"{"type":"object","properties":{"milli_c":{"type":"integer"}},"required":["milli_c"]}"#,
        ),
        READ_ONLY,
    ),
    tool(
        "gpio_write",
        "Drive a GPIO pin high or low. The pin must be configured as an output first; pins 0 and 1 are reserved for the console UART.",
        r#"{"type":"object","properties":{"pin":{"type":"integer","minimum":2,"maximum":39},"on":{"type":"boolean","description":"true drives the pin high"}},"required":["pin","on"],"additionalProperties":false}"#,
        None,
        IDEMPOTENT,
    ),
    tool(
        "gpio_configure",
        "Set the mode of a GPIO pin. Changing a pin that drives external hardware can damage it; check the board notes first.",
        r#"{"type":"object","properties":{"pin":{"type":"integer","minimum":2,"maximum":39},"mode":{"type":"string","enum":["input","output","input_pullup","input_pulldown","analog"]},"initial":{"type":"boolean","description":"Level of an output right after the change"}},"required":["pin","mode"],"additionalProperties":false}"#,
        None,
        DESTRUCTIVE,
    ),
    tool(
        "i2c_read",
        "Read registers of a device on an I2C bus. Returns the bytes in bus order.",
        r#"{"type":"object","properties":{"bus":{"type":"integer","enum":[0,1]},"address":{"type":"integer","minimum":8,"maximum":119,"description":"7-bit device address"},"register":{"type":"integer","minimum":0,"maximum":255},"length":{"type":"integer","minimum":1,"maximum":32,"default":1}},"required":["bus","address","register"],"additionalProperties":false}"#,
        Some(
            r#"{"type":"object","properties":{"bytes":{"type":"array","items":{"type":"integer","minimum":0,"maximum":255}}},"required":["bytes"]}"#,
        ),
        READ_ONLY,
    ),
    tool(
        "read_file",
        "Read a text file from the workspace. Paths are relative to the workspace root; reading outside it is refused. Large files can be read in pages with offset and limit.",
        r#"{"type":"object","properties":{"path":{"type":"string","description":"Path relative to the workspace root"},"offset":{"type":"integer","minimum":0,"default":0},"limit":{"type":"integer","minimum":1,"maximum":1048576,"default":65536}},"required":["path"],"additionalProperties":false}"#,
        Some(
            r#"{"type":"object","properties":{"content":{"type":"string"},"eof":{"type":"boolean"}},"required":["content","eof"]}"#,
        ),
        READ_ONLY,
    ),
    tool(
        "write_file",
        "Write a text file in the workspace, replacing it unless mode says otherwise. Parent directories are created when create_dirs is set.",
        r#"{"type":"object","properties":{"path":{"type":"string","description":"Path relative to the workspace root"},"content":{"type":"string"},"create_dirs":{"type":"boolean","default":false},"mode":{"type":"string","enum":["overwrite","append","create_new"],"default":"overwrite"}},"required":["path","content"],"additionalProperties":false}"#,
        None,
        DESTRUCTIVE,
    ),
    tool(
        "list_dir",
        "List the entries of a workspace directory with their sizes. Use pattern to filter by glob, for example *.log.",
        r#"{"type":"object","properties":{"path":{"type":"string","default":"."},"recursive":{"type":"boolean","default":false},"pattern":{"type":"string","description":"Glob filter"}},"additionalProperties":false}"#,
        Some(
            r#"{"type":"object","properties":{"entries":{"type":"array","items":{"type":"object","properties":{"name":{"type":"string"},"size":{"type":"integer","minimum":0},"dir":{"type":"boolean"}},"required":["name","size","dir"]}},"truncated":{"type":"boolean"}},"required":["entries"]}"#,
        ),
        READ_ONLY,
    ),
    tool(
        "http_get",
        "Fetch a URL over HTTP(S) from the node's network and return the status, headers and the first 64 KiB of the body.",
        r#"{"type":"object","properties":{"url":{"type":"string","format":"uri","pattern":"^https?://"},"headers":{"type":"object","additionalProperties":{"type":"string"}},"timeout_ms":{"type":"integer","minimum":100,"maximum":60000,"default":10000}},"required":["url"],"additionalProperties":false}"#,
        Some(
            r#"{"type":"object","properties":{"status":{"type":"integer"},"headers":{"type":"object","additionalProperties":{"type":"string"}},"body":{"type":"string"}},"required":["status","body"]}"#,
        ),
        READ_ONLY,
    ),
    tool(
        "search_logs",
        "Search the device logs for a substring, newest first. Filter by level and by a start date.",
        r#"{"type":"object","properties":{"query":{"type":"string","minLength":1},"since":{"type":"string","pattern":"^\\d{4}-\\d{2}-\\d{2}(T\\d{2}:\\d{2}(:\\d{2})?)?$"},"level":{"type":"string","enum":["debug","info","warn","error"]},"max_results":{"type":"integer","minimum":1,"maximum":500,"default":50}},"required":["query"],"additionalProperties":false}"#,
        None,
        READ_ONLY,
    ),
    tool(
        "set_timer",
        "Call a tool of this node later, once or periodically. Timers do not survive a reboot.",
        r#"{"type":"object","properties":{"name":{"type":"string","pattern":"^[a-z][a-z0-9_]{0,15}$"},"after_ms":{"type":"integer","minimum":1},"repeat":{"type":"boolean","default":false},"action":{"type":"object","properties":{"tool":{"type":"string"},"arguments":{"type":"object"}},"required":["tool","arguments"]}},"required":["name","after_ms","action"],"additionalProperties":false}"#,
        None,
        Annotations::NONE,
    ),
];

/// Frames for the COBS benchmarks: every fixture frame in both encodings, eight times over
/// (64 frames). Postcard frames hold `0x00` bytes, JSON frames none, so both COBS paths run.
pub fn stream_payloads() -> Vec<Vec<u8>> {
    let mut one_round = Vec::new();
    for kind in FrameKind::ALL {
        one_round.push(kind.frame(Encoding::Json));
        one_round.push(kind.frame(Encoding::Postcard));
    }
    let mut all = Vec::new();
    for _ in 0..8 {
        all.extend(one_round.iter().cloned());
    }
    all
}
