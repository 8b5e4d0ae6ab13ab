"""Cluster setting names the kit can check offline, by namespace.

``oskit validate`` refuses a setting in ``cluster.yaml`` whose namespace is listed here but whose
name is not (a typo would otherwise fail at apply, or be ignored). Settings of other namespaces (core
OpenSearch, other plugins) are not checked. Sources, read from the plugins' code: ML Commons
``common/.../settings/MLCommonsSettings.java``, k-NN ``src/main/java/org/opensearch/knn/index/KNNSettings.java``,
neural-search ``settings/NeuralSearchSettings.java`` (main branches, 2026-08); names removed in 3.x
that 2.x clusters still accept are kept (marked 2.x).
"""

from __future__ import annotations

__all__ = ["KNOWN_SETTINGS", "NAMESPACES"]

_ML = "plugins.ml_commons."
_ML_NAMES = """
ag_ui_enabled agent_framework_enabled agentic_memory_enabled agentic_search_template_enabled
allow_custom_deployment_plan allow_registering_model_via_local_file allow_registering_model_via_url
batch_ingestion_bulk_size connector.private_ip_enabled connector.restricted_ip_patterns
connector_access_control_enabled controller_enabled disk_free_space_threshold enable_inhouse_python_model
exclude_nodes._name execute_tools_enabled index_insight_feature_enabled jvm_heap_memory_threshold
local_model.enabled master_key_cache_ttl_minutes max_batch_inference_tasks max_batch_ingestion_tasks
max_deploy_model_tasks_per_node max_json_size max_ml_task_per_node max_model_on_node
max_register_model_tasks_per_node mcp_connector_enabled mcp_header_passthrough_enabled mcp_server_enabled
memory.default_history_max_count memory.default_long_term_max_count memory.default_session_max_count
memory.default_session_retention_days memory.orphan_ttl_days memory.retention_enabled
memory.retention_job_interval_hours memory.retention_job_throttle_seconds memory.working_memory_ttl_days
memory_feature_enabled metrics_collection_enabled metrics_static_collection_enabled ml_task_timeout_in_seconds
model_access_control_enabled model_auto_deploy.enable model_auto_redeploy.enable
model_auto_redeploy.lifetime_retry_times model_auto_redeploy_success_ratio monitoring_request_count
multi_tenancy_enabled native_memory_threshold offline_batch_inference_enabled offline_batch_ingestion_enabled
only_run_on_ml_node rag_pipeline_feature_enabled remote_agentic_memory_enabled remote_inference.enabled
remote_job.status_field remote_job.status_regex.cancelled remote_job.status_regex.cancelling
remote_job.status_regex.completed remote_job.status_regex.expired remote_job.status_regex.failed
safe_delete_model stream_enabled sync_up_job_interval_in_seconds task_dispatch_policy
task_dispatcher.eligible_node_role.local_model task_dispatcher.eligible_node_role.remote_model
trusted_connector_endpoints_regex trusted_connector_private_endpoints_regex trusted_url_regex
unified_agent_api_enabled
encryption.master_key
""".split()  # the last line: 2.x

_KNN_NAMES = """
knn.algo_param.index_thread_qty knn.cache.item.expiry.enabled knn.cache.item.expiry.minutes
knn.circuit_breaker.triggered knn.circuit_breaker.unset.percentage knn.faiss.avx2.disabled
knn.faiss.avx512.disabled knn.faiss.avx512_spr.disabled knn.memory.circuit_breaker.enabled
knn.memory.circuit_breaker.limit knn.model.cache.size.limit knn.model.index.number_of_replicas
knn.model.index.number_of_shards knn.quantization.cache.expiry.minutes knn.quantization.cache.size.limit
knn.remote_index_build.client.timeout knn.remote_index_build.enabled knn.remote_index_build.poll.interval
knn.remote_index_build.repository knn.remote_index_build.service.endpoint
knn.remote_index_build.service.password knn.remote_index_build.service.username
knn.remote_index_build.size.max knn.vector_streaming_memory.limit
knn.plugin.enabled
""".split()  # the last line: 2.x

_NEURAL = "plugins.neural_search."
_NEURAL_NAMES = """
circuit_breaker.limit circuit_breaker.overhead reranker_max_document_fields
sparse.algo_param.index_thread_qty stats_enabled
""".split()

NAMESPACES = (_ML, "knn.", _NEURAL)
KNOWN_SETTINGS = frozenset([_ML + n for n in _ML_NAMES] + _KNN_NAMES + [_NEURAL + n for n in _NEURAL_NAMES])
