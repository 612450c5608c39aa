//! The command line of `cargo bench --bench outcomes`.

use crate::{
    policy::Policy,
    profile::Profile,
    quota::{QuotaPolicy, QUOTA_PROFILE},
    run::Settings,
};

/// The usage text.
pub const USAGE: &str = "\
usage: cargo bench --bench outcomes -- [--seed N] [--json] [--profile NAME]... [--policy NAME]...

Replays seeded fault traces against each policy in virtual time and prints one markdown table
per profile (or, with --json, one JSON document).

  --seed N         seed for the workload, the faults and the policies' jitter (default 13)
  --json           JSON instead of markdown tables
  --profile NAME   only this profile (repeatable): steady-429, flaky-5xx, outage-20s,
                   outage-5min, flapping, slow, edge-html, overload-529, quota-exhausted
                   (Mark2Notion's monthly quota running out; its own policies and columns)
  --policy NAME    only this policy (repeatable): bare, naive, notion-js-sdk, tower-resilience,
                   tower-resilience-no-breaker, bulwark, bulwark-dedupe; for quota-exhausted
                   also seed-retry-loop, retry-every-failure (bare and bulwark are in both)
  -h, --help       this text";

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    /// The settings of every run.
    pub settings: Settings,
    /// JSON instead of markdown.
    pub json: bool,
    /// The profiles, in table order.
    pub profiles: Vec<Profile>,
    /// The policies, in row order.
    pub policies: Vec<Policy>,
    /// Whether the `quota-exhausted` table runs (after the profiles' tables).
    pub quota_exhausted: bool,
    /// The `quota-exhausted` table's policies, in row order.
    pub quota_policies: Vec<QuotaPolicy>,
    /// `--help` was given.
    pub help: bool,
}

impl Args {
    /// Parses the arguments after the program name. `--bench`, which `cargo bench` passes to
    /// every bench, is ignored.
    ///
    /// Without `--profile`, every profile and `quota-exhausted`; without `--policy`, every
    /// policy of each. A `--policy` list naming none of a table's policies leaves that table
    /// out.
    ///
    /// # Errors
    /// An unknown flag, a missing or bad value, an unknown profile or policy name.
    pub fn parse<I, S>(args: I) -> Result<Self, String>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut parsed = Self {
            settings: Settings::default(),
            json: false,
            profiles: Vec::new(),
            policies: Vec::new(),
            quota_exhausted: false,
            quota_policies: Vec::new(),
            help: false,
        };
        let (mut any_profile, mut any_policy) = (false, false);
        let mut args = args.into_iter().map(Into::into);
        while let Some(arg) = args.next() {
            let (flag, inline) = match arg.split_once('=') {
                Some((flag, value)) if flag.starts_with("--") => {
                    (flag.to_owned(), Some(value.to_owned()))
                }
                _ => (arg, None),
            };
            let mut value = |name: &str| {
                inline
                    .clone()
                    .or_else(|| args.next())
                    .ok_or_else(|| format!("{name} needs a value"))
            };
            match flag.as_str() {
                "--bench" => {}
                "--json" => parsed.json = true,
                "-h" | "--help" => parsed.help = true,
                "--seed" => {
                    let text = value("--seed")?;
                    parsed.settings.seed = text
                        .parse()
                        .map_err(|_| format!("--seed wants a number, not {text:?}"))?;
                }
                "--profile" => {
                    let name = value("--profile")?;
                    any_profile = true;
                    if name == QUOTA_PROFILE {
                        parsed.quota_exhausted = true;
                        continue;
                    }
                    let profile = Profile::from_name(&name)
                        .ok_or_else(|| format!("unknown profile {name:?}"))?;
                    parsed.profiles.push(profile);
                }
                "--policy" => {
                    let name = value("--policy")?;
                    any_policy = true;
                    let policy = Policy::from_name(&name);
                    let quota_policy = QuotaPolicy::from_name(&name);
                    if policy.is_none() && quota_policy.is_none() {
                        return Err(format!("unknown policy {name:?}"));
                    }
                    parsed.policies.extend(policy);
                    parsed.quota_policies.extend(quota_policy);
                }
                other => return Err(format!("unknown argument {other:?}")),
            }
        }
        if !any_profile {
            parsed.profiles = Profile::ALL.to_vec();
            parsed.quota_exhausted = true;
        }
        if !any_policy {
            parsed.policies = Policy::ALL.to_vec();
            parsed.quota_policies = QuotaPolicy::ALL.to_vec();
        }
        if parsed.policies.is_empty() {
            parsed.profiles.clear();
        }
        if parsed.quota_policies.is_empty() {
            parsed.quota_exhausted = false;
        }
        Ok(parsed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_flags_and_errors() {
        let none: [&str; 0] = [];
        let args = Args::parse(none).unwrap();
        assert_eq!(args.settings, Settings::new(Settings::DEFAULT_SEED));
        assert_eq!((args.profiles.len(), args.policies.len()), (8, 7));
        assert!(!args.json && !args.help);

        let args = Args::parse([
            "--bench",
            "--seed",
            "42",
            "--json",
            "--profile=slow",
            "--policy",
            "bulwark",
        ])
        .unwrap();
        assert_eq!(args.settings.seed, 42);
        assert!(args.json);
        assert_eq!(args.profiles, [Profile::Slow]);
        assert_eq!(args.policies, [Policy::Bulwark]);

        assert!(Args::parse(["--seed"])
            .unwrap_err()
            .contains("needs a value"));
        assert!(Args::parse(["--seed", "x"]).is_err());
        assert!(Args::parse(["--profile", "nope"]).is_err());
        assert!(Args::parse(["--frobnicate"]).is_err());
        assert!(Args::parse(["--help"]).unwrap().help);
    }

    #[test]
    fn quota_exhausted_is_a_profile_with_policies_of_its_own() {
        let none: [&str; 0] = [];
        let args = Args::parse(none).unwrap();
        assert!(args.quota_exhausted);
        assert_eq!(args.quota_policies, QuotaPolicy::ALL);

        let args = Args::parse(["--profile", "quota-exhausted"]).unwrap();
        assert!(args.quota_exhausted && args.profiles.is_empty());

        let args = Args::parse(["--profile", "slow"]).unwrap();
        assert!(!args.quota_exhausted);
        assert_eq!(args.profiles, [Profile::Slow]);

        let args = Args::parse(["--policy", "seed-retry-loop", "--policy", "bulwark"]).unwrap();
        assert_eq!(args.policies, [Policy::Bulwark]);
        assert_eq!(
            args.quota_policies,
            [QuotaPolicy::SeedRetryLoop, QuotaPolicy::Bulwark]
        );
        assert_eq!(args.profiles.len(), 8);

        // A policy only the quota table has: the Notion tables are left out.
        let args = Args::parse(["--policy=retry-every-failure"]).unwrap();
        assert!(args.profiles.is_empty() && args.quota_exhausted);
        // And the other way round.
        let args = Args::parse(["--policy", "notion-js-sdk"]).unwrap();
        assert!(!args.quota_exhausted && args.profiles.len() == 8);
    }
}
