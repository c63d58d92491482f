//! Starting a node: its data directory checked and opened, Raft, the peer server and the
//! background tasks.

use super::*;

impl<A: Application> RaftNode<A> {
    /// Opens the node's data directory and the application on its engine, starts Raft and the
    /// peer server, and the background tasks. A new node waits to be initialized or added to
    /// a cluster.
    pub async fn start(config: RaftNodeConfig) -> Result<RaftNode<A>> {
        let vfs: VfsRef = OsVfs::shared();
        Self::start_with_vfs(config, vfs).await
    }

    /// Like [`RaftNode::start`], with every file going through `vfs`.
    pub async fn start_with_vfs(config: RaftNodeConfig, vfs: VfsRef) -> Result<RaftNode<A>> {
        let openraft_config = Arc::new(config.raft.openraft_config(&config.cluster_id)?);
        let span = tracing::info_span!("node", id = config.node_id);
        let _enter = span.enter();
        let (wal, sm, app) = {
            let (vfs, config) = (vfs.clone(), config.clone());
            tokio::task::spawn_blocking(move || -> Result<(Wal, StateMachine, Arc<A>)> {
                identity::claim(
                    vfs.as_ref(),
                    &config.data_dir,
                    &config.cluster_id,
                    config.node_id,
                )?;
                let wal = Wal::open(vfs.clone(), config.data_dir.join("wal"), config.wal.clone())?;
                let (sm, app) =
                    StateMachine::open::<A>(vfs, &config.data_dir, config.engine.clone())?;
                crate::recovery::check_engine_against_log(&config.data_dir, &sm, &wal)?;
                sm.verify_engine()?;
                Ok((wal, sm, app))
            })
            .await
            .map_err(|e| Error::Stopped(e.to_string()))??
        };
        let wal = Arc::new(wal);
        let listener = TcpListener::bind(config.raft_listen)
            .await
            .map_err(|e| Error::Io {
                what: format!("listening on {}", config.raft_listen),
                source: e,
            })?;
        let raft_addr = listener.local_addr().map_err(|e| Error::Io {
            what: "reading the listening address".into(),
            source: e,
        })?;
        let network = PeerNetwork::new(
            &config.cluster_id,
            config.node_id,
            NetworkConfig {
                connect_timeout: config.raft.rpc_timeout(),
                answer_deadline: AnswerDeadline {
                    base: config.raft.rpc_timeout(),
                    min_bytes_per_sec: config.raft.min_replication_bytes_per_sec,
                },
                chunk_timeout: Duration::from_millis(config.raft.snapshot_chunk_timeout_ms),
                chunk_bytes: config.raft.snapshot_chunk_bytes,
                dial_overrides: config.dial_overrides.clone(),
                tls: config.tls.clone(),
                append_transport: config.raft.append_transport,
            },
            sm.timeline().clone(),
        );
        let caller = crate::repair::Caller {
            cluster_id: config.cluster_id.clone(),
            node_id: config.node_id,
            tls: config.tls.clone(),
        };
        crate::repair::repair_at_start(&sm, &wal, &caller, &config.dial_overrides).await?;
        let raft = Raft::new(
            config.node_id,
            openraft_config,
            network.clone(),
            LogStore::new(wal.clone())
                .with_max_batch_bytes(config.raft.max_payload_bytes)
                .with_timeline(sm.timeline().clone()),
            sm.clone(),
        )
        .await
        .map_err(|e| Error::Stopped(e.to_string()))?;
        sm.set_repairer(
            caller,
            crate::repair::running_peers(
                raft.clone(),
                config.node_id,
                config.dial_overrides.clone(),
            ),
        );
        let clock = Arc::new(FollowerClock::new());
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let leader_loss = config.raft.leader_probe_timeout().map(|t| {
            // Wide enough that two followers rarely run together, short next to a lease.
            let jitter = Duration::from_millis((config.raft.election_timeout_min_ms / 2).min(250));
            LeaderLossDetector::new(raft.clone(), network.clone(), clock.clone(), t, jitter)
        });
        let service = PeerService::new(
            raft.clone(),
            sm.checkpoints().clone(),
            clock.clone(),
            Duration::from_millis(config.raft.snapshot_chunk_timeout_ms),
        );
        let guard = PeerGuard::new(&config.cluster_id, config.node_id, config.tls.is_some());
        let appends = AppendPort::new(service.clone(), guard.clone(), config.raft.rpc_timeout());
        let service = service.into_server(guard);
        let mut server_stop = stopped.clone();
        let conn_stop = stopped.clone();
        let detector = leader_loss.clone();
        let server_tls = config.tls.clone();
        let handshake_timeout = config.raft.rpc_timeout();
        let server = tokio::spawn(async move {
            let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener).map(move |s| {
                s.map(|s| {
                    let _ = s.set_nodelay(true);
                    let io = KillableIo::new(s, conn_stop.clone());
                    match &detector {
                        Some(detector) => {
                            let detector = detector.clone();
                            io.on_close(Box::new(move || detector.connection_closed()))
                        }
                        None => io,
                    }
                })
            });
            let router = tonic::transport::Server::builder()
                .initial_stream_window_size(Some(8 << 20))
                .initial_connection_window_size(Some(16 << 20))
                .add_service(service);
            let shutdown = async move {
                let _ = server_stop.wait_for(|s| *s).await;
            };
            // Each connection is gRPC or an append stream; the port serves both.
            let result = match server_tls {
                Some(tls) => {
                    let incoming = qastore_security::tls::accept(
                        incoming,
                        tls,
                        qastore_security::tls::AcceptOptions::new(handshake_timeout),
                    );
                    let incoming = Box::pin(appends.split(incoming));
                    router
                        .serve_with_incoming_shutdown(incoming, shutdown)
                        .await
                }
                None => {
                    let incoming = Box::pin(appends.split(incoming));
                    router
                        .serve_with_incoming_shutdown(incoming, shutdown)
                        .await
                }
            };
            if let Err(e) = result {
                tracing::error!(error = %e, "the peer server stopped");
            }
        });
        tracing::info!(%raft_addr, data_dir = %config.data_dir.display(), "node started");
        let node = RaftNode {
            id: config.node_id,
            config,
            raft,
            sm,
            app,
            wal,
            clock,
            leader_loss,
            read_rounds: ReadIndexBatch::new(),
            network,
            raft_addr,
            stop,
            tasks: Mutex::new(vec![server]),
        };
        let maintenance = maintenance::spawn(
            node.raft.clone(),
            node.sm.clone(),
            node.wal.clone(),
            node.config.raft.clone(),
            stopped.clone(),
        );
        let repair_watch = crate::repair::spawn_watch(node.sm.clone(), stopped);
        node.tasks.lock().extend([maintenance, repair_watch]);
        Ok(node)
    }
}
