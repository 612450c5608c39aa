//! The Statuspage-style `GET /api/v2/status.json` that FakeNotion serves.

use std::fmt;
use std::time::SystemTime;

use serde_json::{json, Value};

use crate::wire::iso8601;

/// Statuspage's overall indicator, as in `{"status":{"indicator":"minor"}}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum StatusIndicator {
    /// `none`: all systems operational (the default).
    #[default]
    None,
    /// `minor`: a minor outage or degraded performance.
    Minor,
    /// `major`: a partial or major outage.
    Major,
    /// `critical`: a critical outage.
    Critical,
}

impl StatusIndicator {
    /// The wire value: `none`, `minor`, `major` or `critical`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Minor => "minor",
            Self::Major => "major",
            Self::Critical => "critical",
        }
    }

    /// Statuspage's usual description for this indicator.
    pub const fn description(self) -> &'static str {
        match self {
            Self::None => "All Systems Operational",
            Self::Minor => "Minor Service Outage",
            Self::Major => "Partial System Outage",
            Self::Critical => "Major Service Outage",
        }
    }
}

impl fmt::Display for StatusIndicator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What `/api/v2/status.json` currently says.
#[derive(Debug, Clone)]
pub(crate) struct StatusPage {
    indicator: StatusIndicator,
    description: String,
    updated: SystemTime,
}

impl StatusPage {
    pub(crate) fn new(indicator: StatusIndicator) -> Self {
        Self {
            indicator,
            description: indicator.description().to_owned(),
            updated: SystemTime::now(),
        }
    }

    pub(crate) fn set(&mut self, indicator: StatusIndicator, description: String) {
        self.indicator = indicator;
        self.description = description;
        self.updated = SystemTime::now();
    }

    pub(crate) fn indicator(&self) -> StatusIndicator {
        self.indicator
    }

    pub(crate) fn to_json(&self) -> Value {
        json!({
            "page": {
                "id": "kgl53swp0yg1",
                "name": "Notion",
                "url": "https://www.notion-status.com",
                "time_zone": "Etc/UTC",
                "updated_at": iso8601(self.updated),
            },
            "status": {
                "indicator": self.indicator.as_str(),
                "description": self.description,
            },
        })
    }
}
