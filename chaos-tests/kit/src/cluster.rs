//! A cluster of `qastore serve` processes on 127.0.0.1, each with its own config file, data
//! directory, log file and pid file under one directory (see [`crate::pids`]): what the
//! process tests, the chaos harness, `qastore demo` and the cluster benchmark run.

mod config;
mod node;
mod watch;

pub use node::NodeProc;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::Duration;

use qastore_client::{Client, ClientConfig};

use crate::ports::{self, Reserved};
use crate::{pids, KitError};

/// Which ports the nodes listen on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ports {
    /// Any free ones.
    Free,
    /// From these API, peer and HTTP base ports on (node 1 on the base ports), when all are
    /// free; otherwise any free ones.
    From {
        /// The first client API port.
        api: u16,
        /// The first peer port.
        raft: u16,
        /// The first HTTP port.
        http: u16,
    },
}

impl Ports {
    /// API ports from 7001, peer ports from 7101, HTTP ports from 7201: what the documented
    /// commands expect of a local cluster.
    pub const DEFAULT: Ports = Ports::From {
        api: 7001,
        raft: 7101,
        http: 7201,
    };
}

/// What cluster to prepare.
#[derive(Debug, Clone)]
pub struct ClusterSpec {
    /// How many nodes.
    pub size: usize,
    /// The first node's id; the others follow.
    pub first_id: u64,
    /// The cluster id in every config.
    pub cluster_id: String,
    /// TOML added to every node's config after its addresses.
    pub settings: String,
    /// Which ports.
    pub ports: Ports,
    /// Environment variables of every node process.
    pub env: Vec<(String, String)>,
    /// The `qastore` program; `None`: [`crate::find_qastore`].
    pub exe: Option<PathBuf>,
    /// The directory for configs, data, logs and pid files; `None`: a temporary directory
    /// removed with the cluster.
    pub dir: Option<PathBuf>,
    /// Run on mutual TLS, with certificates the kit makes in `<dir>/certs` (see
    /// [`crate::certs`]), unless `settings` has a `[tls]` section of its own; otherwise the
    /// nodes run insecure, said so in their configs.
    pub tls: bool,
}

impl ClusterSpec {
    /// `size` nodes with ids from 1, any free ports, default settings, on mutual TLS, in a
    /// temporary directory, logging at `info`: what the process tests start.
    pub fn test(size: usize) -> ClusterSpec {
        ClusterSpec {
            size,
            first_id: 1,
            cluster_id: "test-cluster".into(),
            settings: String::new(),
            ports: Ports::Free,
            env: vec![("RUST_LOG".into(), "info".into())],
            exe: None,
            dir: None,
            tls: true,
        }
    }

    /// `size` nodes of the program `exe` with ids from 1 in `dir`, on the default ports when
    /// they are free ([`Ports::DEFAULT`]): what `qastore demo` and the cluster benchmark run.
    pub fn local(exe: &Path, dir: &Path, size: usize, cluster_id: &str) -> ClusterSpec {
        ClusterSpec {
            size,
            first_id: 1,
            cluster_id: cluster_id.into(),
            settings: String::new(),
            ports: Ports::DEFAULT,
            env: Vec::new(),
            exe: Some(exe.to_path_buf()),
            dir: Some(dir.to_path_buf()),
            tls: false,
        }
    }
}

/// The cluster: its nodes by id, and how to start them.
#[derive(Debug)]
pub struct ProcCluster {
    /// The nodes by id.
    pub nodes: BTreeMap<u64, NodeProc>,
    /// The cluster id in every config.
    pub cluster_id: String,
    dir: PathBuf,
    exe: PathBuf,
    settings: String,
    members: String,
    env: Vec<(String, String)>,
    default_ports: bool,
    /// What the kit's clients present to a cluster running mutual TLS.
    client_tls: Option<qastore_client::ClientTls>,
    /// Where the certificates the kit made live, for a cluster it runs on mutual TLS.
    certs: Option<PathBuf>,
    /// The nodes' ports, held until the first node starts.
    reserved: Reserved,
    /// Declared last: the directory goes only after the processes are gone.
    _temp: Option<tempfile::TempDir>,
}

impl ProcCluster {
    /// Prepares a test cluster of `size` nodes with `settings` TOML in every config, starts
    /// them (node 1 forming the cluster) and waits up to 30 seconds for a leader, then for
    /// every node to know itself a member.
    pub async fn start(size: usize, settings: &str) -> Result<ProcCluster, KitError> {
        Self::start_spec(ClusterSpec {
            settings: settings.into(),
            ..ClusterSpec::test(size)
        })
        .await
    }

    /// As [`ProcCluster::start`], without TLS: for clients that speak only plain gRPC.
    pub async fn start_insecure(size: usize, settings: &str) -> Result<ProcCluster, KitError> {
        Self::start_spec(ClusterSpec {
            settings: settings.into(),
            tls: false,
            ..ClusterSpec::test(size)
        })
        .await
    }

    async fn start_spec(spec: ClusterSpec) -> Result<ProcCluster, KitError> {
        let mut c = Self::create(spec)?;
        c.release_ports();
        for id in c.ids() {
            c.spawn(id, id == 1)?;
        }
        c.wait_leader(Duration::from_secs(30)).await?;
        c.wait_formed(Duration::from_secs(30)).await?;
        Ok(c)
    }

    /// Writes the configs of a test cluster of `size` nodes from id `first_id` (see
    /// [`ClusterSpec::test`]), starting none. Its ports are free at once, for a test that
    /// starts a node its own way.
    pub fn prepare(
        size: usize,
        cluster_id: &str,
        settings: &str,
        first_id: u64,
    ) -> Result<ProcCluster, KitError> {
        let mut c = Self::create(ClusterSpec {
            first_id,
            cluster_id: cluster_id.into(),
            settings: settings.into(),
            ..ClusterSpec::test(size)
        })?;
        c.release_ports();
        Ok(c)
    }

    /// Frees the nodes' ports, held since [`ProcCluster::create`] so that nothing else takes
    /// them (starting a node frees them too): for nodes started outside the kit.
    pub fn release_ports(&mut self) {
        self.reserved.release();
    }

    /// Writes the configs of the cluster `spec` describes, starting none. The nodes' ports
    /// stay held until the first node starts (or [`ProcCluster::release_ports`]).
    pub fn create(spec: ClusterSpec) -> Result<ProcCluster, KitError> {
        let exe = match spec.exe {
            Some(exe) => exe,
            None => crate::find_qastore()?,
        };
        let (temp, dir) = match spec.dir {
            Some(dir) => {
                std::fs::create_dir_all(&dir).map_err(|e| KitError::at("creating", &dir, e))?;
                // Absolute, so that the recorded processes can be recognised from anywhere.
                let dir = dir
                    .canonicalize()
                    .map_err(|e| KitError::at("resolving", &dir, e))?;
                (None, dir)
            }
            None => {
                let temp = tempfile::tempdir()
                    .map_err(|e| KitError::io("creating a temporary directory", e))?;
                let dir = temp.path().to_path_buf();
                (Some(temp), dir)
            }
        };
        let size = spec.size;
        let (reserved, default_ports) = match spec.ports {
            Ports::Free => (ports::reserve_free(size * 3)?, false),
            Ports::From { api, raft, http } => {
                let (a, a_fixed) = ports::reserve_from(api, size)?;
                let (r, r_fixed) = ports::reserve_from(raft, size)?;
                let (h, h_fixed) = ports::reserve_from(http, size)?;
                (
                    Reserved::interleave([a, r, h]),
                    a_fixed && r_fixed && h_fixed,
                )
            }
        };
        let mut nodes = BTreeMap::new();
        for i in 0..size {
            let id = spec.first_id + i as u64;
            let [api, raft, http] = [0, 1, 2].map(|k| reserved.addrs[3 * i + k]);
            nodes.insert(
                id,
                NodeProc {
                    id,
                    api,
                    raft,
                    http,
                    config: pids::config_file(&dir, id),
                    data: dir.join(format!("node{id}")),
                    log: dir.join(format!("node{id}.log")),
                    extra: String::new(),
                    initial: true,
                    child: None,
                    paused: false,
                },
            );
        }
        let members: Vec<_> = nodes.values().map(|n| (n.id, n.raft, n.api)).collect();
        let mut settings = spec.settings;
        let (certs, client_tls) = if spec.tls && !settings.contains("[tls]") {
            let certs = dir.join("certs");
            let ids: Vec<u64> = nodes.keys().copied().collect();
            let client = crate::certs::make(&certs, &spec.cluster_id, &ids)?;
            settings.push_str(&format!("\n[tls]\ndir = \"{}\"\n", certs.display()));
            (Some(certs), Some(client))
        } else {
            (None, None)
        };
        let c = ProcCluster {
            nodes,
            cluster_id: spec.cluster_id,
            dir,
            exe,
            settings,
            members: config::members(&members),
            env: spec.env,
            default_ports,
            client_tls,
            certs,
            reserved,
            _temp: temp,
        };
        for id in c.ids() {
            c.write_config(id)?;
        }
        Ok(c)
    }

    /// (Re)writes node `id`'s config from its fields.
    pub fn write_config(&self, id: u64) -> Result<(), KitError> {
        let n = self.node(id).ok_or(KitError::NoNode(id))?;
        let text = config::render(&self.cluster_id, n, &self.settings, &self.members);
        std::fs::write(&n.config, text).map_err(|e| KitError::at("writing", &n.config, e))
    }

    /// Writes the config of a node `id` that is not among the initial members (to be added
    /// as a learner), on free ports, with `settings` TOML instead of the cluster's; start it
    /// with `spawn(id, false)`.
    pub fn prepare_joiner(&mut self, id: u64, settings: &str) -> Result<(), KitError> {
        let addrs = ports::free_addresses(3)?;
        let mut settings = settings.to_string();
        if let Some(certs) = &self.certs {
            crate::certs::add_node(certs, id)?;
            if !settings.contains("[tls]") {
                settings.push_str(&format!("\n[tls]\ndir = \"{}\"\n", certs.display()));
            }
        }
        let settings = settings.as_str();
        let n = NodeProc {
            id,
            api: addrs[0],
            raft: addrs[1],
            http: addrs[2],
            config: pids::config_file(&self.dir, id),
            data: self.dir.join(format!("node{id}")),
            log: self.dir.join(format!("node{id}.log")),
            extra: String::new(),
            initial: false,
            child: None,
            paused: false,
        };
        let text = config::render(&self.cluster_id, &n, settings, "");
        std::fs::write(&n.config, text).map_err(|e| KitError::at("writing", &n.config, e))?;
        self.nodes.insert(id, n);
        Ok(())
    }

    /// Gives the stopped node `old` the new id `new`: same addresses and files, its config
    /// rewritten without initial members (it joins as a new node), and with TLS a certificate
    /// for its new id.
    pub fn renumber(&mut self, old: u64, new: u64) -> Result<(), KitError> {
        if self.nodes.contains_key(&new) {
            return Err(KitError::Cluster(format!("node {new} exists already")));
        }
        let mut n = self.nodes.remove(&old).ok_or(KitError::NoNode(old))?;
        if n.is_running() {
            self.nodes.insert(old, n);
            return Err(KitError::Cluster(format!("node {old} is running")));
        }
        if let Some(certs) = &self.certs {
            // Its certificate must name the id it now has: peers check it.
            if let Err(e) = crate::certs::add_node(certs, new) {
                self.nodes.insert(old, n);
                return Err(e);
            }
        }
        n.id = new;
        n.initial = false;
        self.nodes.insert(new, n);
        self.write_config(new)
    }

    /// Starts node `id` (`init`: it forms the cluster if new).
    pub fn spawn(&mut self, id: u64, init: bool) -> Result<(), KitError> {
        self.spawn_with(id, if init { &["--init"] } else { &[] })
    }

    /// Starts node `id` with extra `serve` arguments.
    pub fn spawn_with(&mut self, id: u64, args: &[&str]) -> Result<(), KitError> {
        self.release_ports();
        let dir = self.dir.clone();
        let mut cmd = Command::new(&self.exe);
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        let n = self.node_mut(id)?;
        if n.is_running() {
            return Err(KitError::Cluster(format!("node {id} is running")));
        }
        cmd.arg("serve").arg("--config").arg(&n.config).args(args);
        let mut child = spawn_logged(&mut cmd, &n.log)?;
        if let Err(e) = pids::record(&dir, id, child.id()) {
            // A node nobody could find to stop later must not be left running.
            let _ = child.kill();
            let _ = child.wait();
            return Err(e);
        }
        n.child = Some(child);
        n.paused = false;
        Ok(())
    }

    /// The cluster's directory (absolute where one was given).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The `qastore` program the nodes run.
    pub fn exe(&self) -> &Path {
        &self.exe
    }

    /// Whether the nodes listen on the ports [`Ports::From`] asked for; false when some were
    /// taken and free ports were chosen instead (and always with [`Ports::Free`]).
    pub fn on_default_ports(&self) -> bool {
        self.default_ports
    }

    /// Node `id`.
    pub fn node(&self, id: u64) -> Option<&NodeProc> {
        self.nodes.get(&id)
    }

    /// Node `id`, to change before its config is rewritten.
    pub fn node_mut(&mut self, id: u64) -> Result<&mut NodeProc, KitError> {
        self.nodes.get_mut(&id).ok_or(KitError::NoNode(id))
    }

    /// Every node's id.
    pub fn ids(&self) -> Vec<u64> {
        self.nodes.keys().copied().collect()
    }

    /// The ids of every node but `leader`.
    pub fn others(&self, leader: u64) -> Vec<u64> {
        self.nodes
            .keys()
            .copied()
            .filter(|i| *i != leader)
            .collect()
    }

    /// The ids of the nodes running and not frozen.
    pub fn up(&self) -> Vec<u64> {
        self.nodes
            .values()
            .filter(|n| n.is_running() && !n.paused)
            .map(|n| n.id)
            .collect()
    }

    /// Every node's client API address.
    pub fn endpoints(&self) -> Vec<String> {
        self.nodes.values().map(|n| n.api.to_string()).collect()
    }

    /// Node `id`'s client API address (empty if there is no such node).
    pub fn api(&self, id: u64) -> String {
        self.node(id).map(|n| n.api.to_string()).unwrap_or_default()
    }

    /// A client of the whole cluster as the tests use it: 5-second calls, retried for 30
    /// seconds.
    pub fn client(&self) -> Result<Client, KitError> {
        self.client_with(
            "test-client",
            Duration::from_secs(5),
            Duration::from_secs(30),
        )
    }

    /// Where the certificates of a cluster the kit runs on mutual TLS live (`None` when it
    /// does not make them).
    pub fn certs_dir(&self) -> Option<&Path> {
        self.certs.as_deref()
    }

    /// What the kit's clients present to the cluster (`None`: plain connections).
    pub fn client_tls(&self) -> Option<&qastore_client::ClientTls> {
        self.client_tls.as_ref()
    }

    /// Makes the kit's clients (and so its waits) use mutual TLS with `tls`, for a cluster
    /// whose settings turn TLS on.
    pub fn set_client_tls(&mut self, tls: Option<qastore_client::ClientTls>) {
        self.client_tls = tls;
    }

    /// A client of the whole cluster named `name`.
    pub fn client_with(
        &self,
        name: &str,
        call_timeout: Duration,
        retry_for: Duration,
    ) -> Result<Client, KitError> {
        let options = ClientConfig {
            client_id: name.into(),
            call_timeout,
            retry_for,
            tls: self.client_tls.clone(),
            ..ClientConfig::default()
        };
        Ok(Client::new(&self.endpoints(), options)?)
    }

    /// Kills node `id` at once (SIGKILL), as a crash would.
    pub fn kill(&mut self, id: u64) -> Result<(), KitError> {
        let dir = self.dir.clone();
        let n = self.node_mut(id)?;
        let was_running = n.is_running();
        n.kill()?;
        if was_running {
            pids::forget(&dir, id);
        }
        Ok(())
    }

    /// Stops node `id` with SIGTERM and waits up to 30 seconds for it to end; an error if it
    /// does not (it is then killed).
    pub fn terminate(&mut self, id: u64) -> Result<ExitStatus, KitError> {
        match self.stop(id, Duration::from_secs(30))? {
            Some(status) => Ok(status),
            None => Err(KitError::Cluster(format!("node {id} ignored SIGTERM"))),
        }
    }

    /// Stops node `id` gracefully (SIGTERM), killing it if it still runs after `grace`: its
    /// exit status if it ended by itself, `None` if it was killed or was not running.
    pub fn stop(&mut self, id: u64, grace: Duration) -> Result<Option<ExitStatus>, KitError> {
        let dir = self.dir.clone();
        let n = self.node_mut(id)?;
        if !n.is_running() {
            return Ok(None);
        }
        pids::forget(&dir, id);
        let status = n.terminate(grace);
        if !matches!(status, Ok(Some(_))) {
            n.kill()?;
        }
        status
    }

    /// Waits up to `within` for node `id` to end by itself (say, halted by a drill): its
    /// exit status, or `None` if it still runs.
    pub fn reap(&mut self, id: u64, within: Duration) -> Result<Option<ExitStatus>, KitError> {
        let dir = self.dir.clone();
        let status = self.node_mut(id)?.reap(within)?;
        if status.is_some() {
            pids::forget(&dir, id);
        }
        Ok(status)
    }

    /// Freezes (SIGSTOP, `true`) or thaws (SIGCONT, `false`) node `id`: a partition as far as
    /// the others can tell.
    pub fn pause(&mut self, id: u64, paused: bool) -> Result<(), KitError> {
        let n = self.node_mut(id)?;
        let pid = n
            .pid()
            .ok_or_else(|| KitError::Cluster(format!("node {id} is not running")))?;
        let sig = if paused {
            crate::Signal::Stop
        } else {
            crate::Signal::Cont
        };
        crate::signal::kill(pid, sig).map_err(|e| KitError::io(format!("pausing node {id}"), e))?;
        n.paused = paused;
        Ok(())
    }

    /// Leaves the processes running after this program exits (their pid files stay).
    pub fn detach(&mut self) {
        for n in self.nodes.values_mut() {
            n.child.take();
        }
    }

    /// Stops every node still running (see [`ProcCluster::stop`]).
    pub fn stop_all(&mut self, grace: Duration) {
        for id in self.ids() {
            let _ = self.stop(id, grace);
        }
    }

    /// Kills every node still running.
    pub fn kill_all(&mut self) {
        for id in self.ids() {
            let _ = self.kill(id);
        }
    }

    /// Every node's log, each under a heading: what a failed test prints.
    pub fn logs(&self) -> String {
        self.nodes
            .values()
            .map(|n| {
                format!(
                    "--- node {} ({})\n{}\n",
                    n.id,
                    n.log.display(),
                    n.read_log()
                )
            })
            .collect()
    }

    /// What `qastore ctl` and `qastore bench` are given to reach this cluster over mutual TLS
    /// as the kit's admin client (nothing for a cluster without the kit's certificates).
    pub fn cli_tls_args(&self) -> Vec<String> {
        match &self.certs {
            Some(dir) => vec![
                "--cert-dir".into(),
                dir.display().to_string(),
                "--client-name".into(),
                crate::certs::CLIENT.into(),
            ],
            None => Vec::new(),
        }
    }

    /// `qastore ctl --endpoints <endpoints>` with the kit's TLS arguments, to add to.
    pub fn ctl_command(&self, endpoints: &str) -> Command {
        let mut cmd = Command::new(&self.exe);
        cmd.arg("ctl")
            .arg("--endpoints")
            .arg(endpoints)
            .args(self.cli_tls_args());
        cmd
    }

    /// A client configuration carrying the kit's TLS settings, to adjust.
    pub fn client_config(&self) -> ClientConfig {
        ClientConfig {
            tls: self.client_tls.clone(),
            ..ClientConfig::default()
        }
    }

    /// Runs `qastore ctl --endpoints <every node> <args>`.
    pub async fn ctl(&self, args: &[&str]) -> Result<Output, KitError> {
        let mut cmd = self.ctl_command(&self.endpoints().join(","));
        cmd.args(args);
        tokio::task::spawn_blocking(move || cmd.output())
            .await
            .map_err(|e| KitError::Cluster(format!("running qastore ctl: {e}")))?
            .map_err(|e| KitError::io("running qastore ctl", e))
    }

    /// A GET on node `id`'s HTTP port (HTTPS as the kit's admin client on a cluster running
    /// the kit's certificates): (status code, body).
    pub fn http_get(&self, id: u64, path: &str) -> Result<(u16, String), KitError> {
        self.http_call(id, "GET", path)
    }

    /// A POST on node `id`'s HTTP port, as [`ProcCluster::http_get`].
    pub fn http_post(&self, id: u64, path: &str) -> Result<(u16, String), KitError> {
        self.http_call(id, "POST", path)
    }

    fn http_call(&self, id: u64, method: &str, path: &str) -> Result<(u16, String), KitError> {
        let n = self.node(id).ok_or(KitError::NoNode(id))?;
        match &self.certs {
            None => crate::http::http(n.http, method, path),
            Some(dir) => crate::http::https(n.http, method, path, crate::certs::https_config(dir)?),
        }
    }
}

/// Starts `cmd` with no input and its output appended to the file `log`.
pub fn spawn_logged(cmd: &mut Command, log: &Path) -> Result<Child, KitError> {
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| KitError::at("opening", log, e))?;
    let err = out
        .try_clone()
        .map_err(|e| KitError::at("opening", log, e))?;
    cmd.stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|e| {
            let program = cmd.get_program().to_string_lossy().into_owned();
            KitError::io(format!("starting {program}"), e)
        })
}

impl Drop for ProcCluster {
    fn drop(&mut self) {
        // Never leave orphans behind by accident (`detach` first to keep them).
        self.kill_all();
    }
}
