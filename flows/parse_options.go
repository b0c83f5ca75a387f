package flows

import "encoding/json"

// options parses the module options shared by every kind.
func (p *parser) options(mod *Module, m map[string]json.RawMessage) error {
	id := mod.ID
	var err error
	if mod.StopAfterIf, err = p.stopAfterIf(m["stop_after_if"], id, "stop_after_if"); err != nil {
		return err
	}
	if mod.StopAfterAllItersIf, err = p.stopAfterIf(m["stop_after_all_iters_if"], id, "stop_after_all_iters_if"); err != nil {
		return err
	}
	if raw := m["skip_if"]; !isNull(raw) {
		sm, err := object(raw, id, "skip_if")
		if err != nil {
			return err
		}
		if mod.SkipIf, err = str(sm, "expr", id, "skip_if.expr", true); err != nil {
			return err
		}
		if mod.skipIf, err = compileExpr(mod.SkipIf, modePredicate); err != nil {
			return perr(id, "skip_if.expr", "%v", err)
		}
	}
	if raw := m["sleep"]; !isNull(raw) {
		if mod.Sleep, err = p.numberOrTransform(raw, id, "sleep"); err != nil {
			return err
		}
	}
	if raw := m["timeout"]; !isNull(raw) {
		if mod.Timeout, err = p.numberOrTransform(raw, id, "timeout"); err != nil {
			return err
		}
	}
	if raw := m["mock"]; !isNull(raw) {
		mm, err := object(raw, id, "mock")
		if err != nil {
			return err
		}
		mod.Mock = &Mock{ReturnValue: nullJSON}
		if v := mm["return_value"]; !isNull(v) {
			mod.Mock.ReturnValue, _ = canon(v)
		}
		if mod.Mock.Enabled, err = boolean(mm, "enabled", id, "mock.enabled"); err != nil {
			return err
		}
	}
	if raw := m["suspend"]; !isNull(raw) {
		if mod.Suspend, err = p.suspend(raw, id); err != nil {
			return err
		}
	}
	if raw := m["retry"]; !isNull(raw) {
		if mod.Retry, err = p.retry(raw, id); err != nil {
			return err
		}
	}
	if mod.ContinueOnError, err = boolean(m, "continue_on_error", id, "continue_on_error"); err != nil {
		return err
	}
	if mod.DeleteAfterUse, err = boolean(m, "delete_after_use", id, "delete_after_use"); err != nil {
		return err
	}
	if mod.CacheTTL, _, err = integer(m, "cache_ttl", id, "cache_ttl"); err != nil {
		return err
	}
	if n, ok, err := integer(m, "priority", id, "priority"); err != nil {
		return err
	} else if ok {
		mod.Priority = &n
	}
	return nil
}

func (p *parser) stopAfterIf(raw json.RawMessage, id, field string) (*StopAfterIf, error) {
	if isNull(raw) {
		return nil, nil
	}
	m, err := object(raw, id, field)
	if err != nil {
		return nil, err
	}
	s := &StopAfterIf{}
	if s.Expr, err = str(m, "expr", id, field+".expr", true); err != nil {
		return nil, err
	}
	if s.e, err = compileExpr(s.Expr, modePredicate); err != nil {
		return nil, perr(id, field+".expr", "%v", err)
	}
	if s.SkipIfStopped, err = boolean(m, "skip_if_stopped", id, field+".skip_if_stopped"); err != nil {
		return nil, err
	}
	if raw, ok := m["error_message"]; ok && !isNull(raw) {
		msg, err := str(m, "error_message", id, field+".error_message", false)
		if err != nil {
			return nil, err
		}
		s.ErrorMessage = &msg
	}
	return s, nil
}

func (p *parser) suspend(raw json.RawMessage, id string) (*SuspendConfig, error) {
	m, err := object(raw, id, "suspend")
	if err != nil {
		return nil, err
	}
	s := &SuspendConfig{}
	if s.RequiredEvents, _, err = integer(m, "required_events", id, "suspend.required_events"); err != nil {
		return nil, err
	}
	if s.Timeout, _, err = integer(m, "timeout", id, "suspend.timeout"); err != nil {
		return nil, err
	}
	if rf := m["resume_form"]; !isNull(rf) {
		if _, err := object(rf, id, "suspend.resume_form"); err != nil {
			return nil, err
		}
		s.ResumeForm, _ = canon(rf)
	}
	for _, b := range []struct {
		key string
		dst *bool
	}{
		{"user_auth_required", &s.UserAuthRequired}, {"self_approval_disabled", &s.SelfApprovalDisabled},
		{"hide_cancel", &s.HideCancel}, {"continue_on_disapprove_timeout", &s.ContinueOnDisapproveTimeout},
	} {
		if *b.dst, err = boolean(m, b.key, id, "suspend."+b.key); err != nil {
			return nil, err
		}
	}
	if g := m["user_groups_required"]; !isNull(g) {
		if s.UserGroupsRequired, err = p.transform(g, id, "suspend.user_groups_required", modeValue); err != nil {
			return nil, err
		}
	}
	return s, nil
}

func (p *parser) retry(raw json.RawMessage, id string) (*Retry, error) {
	m, err := object(raw, id, "retry")
	if err != nil {
		return nil, err
	}
	r := &Retry{ExponentialMultiplier: 1}
	if c := m["constant"]; !isNull(c) {
		cm, err := object(c, id, "retry.constant")
		if err != nil {
			return nil, err
		}
		if r.ConstantAttempts, _, err = integer(cm, "attempts", id, "retry.constant.attempts"); err != nil {
			return nil, err
		}
		if r.ConstantSeconds, _, err = integer(cm, "seconds", id, "retry.constant.seconds"); err != nil {
			return nil, err
		}
	}
	if e := m["exponential"]; !isNull(e) {
		em, err := object(e, id, "retry.exponential")
		if err != nil {
			return nil, err
		}
		if r.ExponentialAttempts, _, err = integer(em, "attempts", id, "retry.exponential.attempts"); err != nil {
			return nil, err
		}
		if n, ok, err := integer(em, "multiplier", id, "retry.exponential.multiplier"); err != nil {
			return nil, err
		} else if ok {
			r.ExponentialMultiplier = n
		}
		if r.ExponentialSeconds, _, err = integer(em, "seconds", id, "retry.exponential.seconds"); err != nil {
			return nil, err
		}
		if r.RandomFactor, _, err = integer(em, "random_factor", id, "retry.exponential.random_factor"); err != nil {
			return nil, err
		}
		if r.RandomFactor > 100 {
			return nil, perr(id, "retry.exponential.random_factor", "must be between 0 and 100")
		}
	}
	if r.ExponentialAttempts > 0 && r.ExponentialSeconds == 0 {
		// windmill-common flows.rs validate_retry refuses it too.
		return nil, perr(id, "retry.exponential.seconds", "the exponential base must be greater than 0 (0 would retry at once)")
	}
	if r.ConstantAttempts+r.ExponentialAttempts > maxRetryAttempts {
		return nil, perr(id, "retry", "%d attempts; the limit is %d", r.ConstantAttempts+r.ExponentialAttempts, maxRetryAttempts)
	}
	if ri := m["retry_if"]; !isNull(ri) {
		rm, err := object(ri, id, "retry.retry_if")
		if err != nil {
			return nil, err
		}
		if r.RetryIf, err = str(rm, "expr", id, "retry.retry_if.expr", true); err != nil {
			return nil, err
		}
		if r.retryIf, err = compileExpr(r.RetryIf, modePredicate); err != nil {
			return nil, perr(id, "retry.retry_if.expr", "%v", err)
		}
	}
	return r, nil
}
