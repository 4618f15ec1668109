"""Models: background training with live curves, reports, comparison, promote and roll back."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dnsentinel.dashboard import actions, data, guard, model_reports, training, ui
from dnsentinel.dashboard.access import Forbidden, allows

actor = guard.page_actor()
registry_dir = ui.settings().model.registry_dir
caps = ui.settings().dashboard.training_caps
st.title("Models")


def show_report(version: str) -> None:
    """Per-split metrics, confusion matrices, ROC curve and thresholds of one model."""
    report = model_reports.load(training.model_dir(registry_dir, version))
    if not report:
        st.caption(f"No report files for {version}.")
        return
    table = model_reports.scalar_table(report)
    if not table.empty:
        st.dataframe(table.style.format("{:.4f}"), width="stretch")
    th = model_reports.thresholds(report)
    if th:
        st.caption("Thresholds: " + ", ".join(f"{k} {v}" for k, v in th.items()))
    for split, metrics in model_reports.splits(report).items():
        cm = model_reports.confusion(metrics)
        curve = model_reports.roc(metrics)
        if cm is None and curve is None:
            continue
        st.markdown(f"**{split}**")
        left, right = st.columns(2)
        if cm is not None:
            left.dataframe(cm, width="stretch")
        if curve is not None:
            right.line_chart(curve, x="false positive rate", y="true positive rate", height=220)


# -- start training --------------------------------------------------------------
def training_form() -> None:
    """The run's settings, bounded by the role's cap (``training.start`` checks it again)."""
    cap = caps.get(actor.role)
    most_epochs, most_samples = (cap.max_epochs, cap.max_sample_size) if cap else (500, 50_000_000)
    with st.form("train_form"):
        c1, c2, c3 = st.columns(3)
        name = c1.text_input("Model name", value=f"{actor.name}-{pd.Timestamp.utcnow():%Y%m%d-%H%M%S}", key="tr_name")
        arch = c2.selectbox("Architecture", ["charcnn", "mlbridge-cnn"], key="tr_arch")
        epochs = c3.number_input("Epochs", 1, most_epochs, min(5, most_epochs), key="tr_epochs")
        batch = c1.number_input("Batch size", 8, 65536, 512, key="tr_batch")
        sample = c2.number_input("Sample size", 100, most_samples, min(200_000, most_samples), step=1000, key="tr_sample")
        vetted = c3.checkbox("Include vetted decisions", value=True, key="tr_vetted")
        evaluation = c3.checkbox("Hold out 9 DGA families (an evaluation run, not a model to ship)", value=False,
                                 key="tr_holdout")
        go = st.form_submit_button("Start training")
    if cap:
        st.caption(f"Your role's cap: {cap.max_epochs} epochs, {cap.max_sample_size:,} samples, "
                   f"{cap.max_concurrent_jobs} job(s) at a time.")
    if go:
        try:
            request = training.JobRequest(name.strip(), arch, int(epochs), int(batch), int(sample), vetted, evaluation)
            job = actions.start_training(actor, data.store(), registry_dir, request, caps)
            st.success(f"Training {job.name} started (pid {job.pid}).")
        except (Forbidden, ValueError) as exc:
            st.error(str(exc))
        except Exception as exc:
            ui.service_error("the training job", exc)


with st.expander("Start training", expanded=False):
    if not allows(actor.role, "train"):  # the form stays: a start is refused (and audited) by actions
        st.info(guard.refusal(actor, "train"))
    training_form()

# -- jobs ------------------------------------------------------------------------------
jobs = training.jobs(registry_dir)
if jobs:
    st.subheader("Training jobs")
    chosen = st.selectbox("Job", [j.name for j in jobs], key="tr_job",
                          format_func=lambda n: next(f"{j.name} (by {j.by})" for j in jobs if j.name == n))
    job = next(j for j in jobs if j.name == chosen)

    @st.fragment(run_every=2)
    def job_panel() -> None:
        prog = training.progress(registry_dir, job)
        st.markdown(f"**{job.name}** — state **{prog.state}**")
        total = prog.status.get("epochs") or prog.status.get("total_epochs")
        done = prog.status.get("epoch") or len(prog.history)
        if isinstance(total, (int, float)) and total:
            st.progress(min(1.0, float(done) / float(total)), text=f"epoch {done} of {total}")
        loss, acc = model_reports.curves(prog.history)
        left, right = st.columns(2)
        if not loss.empty:
            with left:
                st.caption("Loss")
                ui.curve_chart(loss)
        if not acc.empty:
            with right:
                st.caption("Accuracy")
                ui.curve_chart(acc)
        if prog.state in ("failed", "died"):
            st.error(prog.status.get("error") or "The training process ended without finishing.")
            st.code(prog.log_tail or "(empty log)")
        elif prog.state == "done":
            show_report(job.name)
        elif loss.empty:
            st.caption("Waiting for the first epoch…")

    job_panel()

# -- registry --------------------------------------------------------------------------
st.subheader("Registry")
try:
    reg = data.registry()
    entries = list(reg.list_models())
    current = reg.current_version()
except Exception as exc:
    ui.service_error("the model registry", exc)
    st.stop()
versions = [model_reports.version_of(e) for e in entries]
if not versions:
    st.info("The registry is empty: train a model first.")
    st.stop()
st.caption(f"Current model: **{current or 'none'}** (workers reload it live).")
st.dataframe(pd.DataFrame([{"version": model_reports.version_of(e), **{k: e.get(k) for k in ("arch", "created", "state", "current")},
                            **(e.get("summary") or {})} if isinstance(e, dict) else {"version": model_reports.version_of(e)}
                           for e in entries]), hide_index=True, width="stretch")

left, right = st.columns(2)
a = left.selectbox("Model A", versions, index=versions.index(current) if current in versions else 0, key="cmp_a")
b = right.selectbox("Model B", versions, index=min(1, len(versions) - 1), key="cmp_b")
with left:
    show_report(a)
with right:
    show_report(b)

c1, c2 = st.columns(2)
if not allows(actor.role, "promote"):  # the buttons stay: actions refuses (and audits) a click
    st.info(guard.refusal(actor, "promote") + " Rolling back too.")
force = c1.checkbox("Promote even if it decides worse on the quality gate", key="promote_force")
if c1.button(f"Promote {a}", disabled=a == current, key="promote"):
    gate = data.gate()
    try:
        actions.promote(actor, data.store(), gate, a, current, force)
        st.success(f"{a} is now the current model.")
        st.rerun()
    except (gate.GateRefused, Forbidden) as exc:
        st.error(str(exc))
    except Exception as exc:
        ui.service_error("the promotion", exc)
if c2.button("Roll back to the previous model", key="rollback"):
    try:
        after = actions.rollback(actor, data.store(), reg, current)
        st.success(f"Rolled back to {after}.")
        st.rerun()
    except Forbidden as exc:
        st.error(str(exc))
    except Exception as exc:
        ui.service_error("the rollback", exc)
