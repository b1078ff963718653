"""Numpy twins of the recurrent kernels (SimpleRNN, LSTM, GRU) and of the embedding lookup.

Everything is in processing order: a layer with ``go_backwards`` reverses its input
(and mask) before calling, exactly as it does for the compiled kernel. Shapes:
``x`` (batch, steps, features); ``w`` (features, gates * units); ``r`` (units,
gates * units); ``b`` (gates * units,) or None; ``rb`` the GRU's recurrent bias
(reset_after) or None; ``h0``/``c0`` (batch, units); ``mask`` (batch, steps) of
bools (True = the step is used, False = the state is carried through);
``rmask`` (gates, batch, units) the recurrent dropout masks (scaled keep masks), one
per gate as Keras draws them, or None.

Gate orders: LSTM i, f, c, o; GRU z, r, h.
The backward functions loop over time in Python: they are oracles, not fast code.
"""
import numpy as np

from fastnet._reference.core import activation, activation_grad

SIMPLE_RNN, LSTM, GRU = 0, 1, 2
N_GATES = {SIMPLE_RNN: 1, LSTM: 4, GRU: 3}


def forward(cell, x, w, r, b, rb, h0, c0=None, mask=None, rmask=None, act="tanh",
            rec_act="sigmoid", reset_after=True, act_alpha=0.0, rec_alpha=0.0):
    """Runs the whole sequence. Returns ``(outputs, cache)``: outputs (batch, steps, units)
    holds the state after each step (carried through masked steps); ``cache`` holds what
    :func:`backward` needs and ``cache["h"]``/``cache["c"]`` the final states."""
    n, steps, _ = x.shape
    units = r.shape[0]
    h = h0.copy()
    c = None if c0 is None else c0.copy()
    outs = np.empty((n, steps, units), dtype=x.dtype)
    cache = dict(cell=cell, x=x, w=w, r=r, mask=mask, rmask=rmask, act=act, rec_act=rec_act,
                 reset_after=reset_after, a=act_alpha, ra=rec_alpha, steps=[], b=b, rb=rb)
    A = lambda z: activation(act, z, act_alpha)  # noqa: E731
    RA = lambda z: activation(rec_act, z, rec_alpha)  # noqa: E731
    ng = N_GATES[cell]
    for t in range(steps):
        hds = [h * rmask[k] for k in range(ng)] if rmask is not None else [h] * ng
        hd = hds[-1]          # the candidate gate's (GRU reset_before multiplies it by r)
        xz = x[:, t] @ w
        if b is not None:
            xz = xz + b
        st = dict(h_prev=h, hds=hds, hd=hd, c_prev=c)
        rec = np.concatenate([hds[k] @ r[:, k * units:(k + 1) * units] for k in range(ng)], axis=1)
        if cell == SIMPLE_RNN:
            z = xz + rec
            hn, cn = A(z), None
            st.update(z=z)
        elif cell == LSTM:
            z = xz + rec
            zi, zf, zc, zo = np.split(z, 4, axis=1)
            i, f, g, o = RA(zi), RA(zf), A(zc), RA(zo)
            cn = f * c + i * g
            hn = o * A(cn)
            st.update(z=z, i=i, f=f, g=g, o=o, c=cn)
        else:
            xz_z, xz_r, xz_h = np.split(xz, 3, axis=1)
            if reset_after:
                rz = rec
                if rb is not None:
                    rz = rz + rb
                rz_z, rz_r, rz_h = np.split(rz, 3, axis=1)
                pz, pr = xz_z + rz_z, xz_r + rz_r
                zg, rg = RA(pz), RA(pr)
                ph = xz_h + rg * rz_h
                st.update(rz_h=rz_h)
            else:
                rz = rec[:, :2 * units]
                pz, pr = xz_z + rz[:, :units], xz_r + rz[:, units:]
                zg, rg = RA(pz), RA(pr)
                rh = rg * hd
                ph = xz_h + rh @ r[:, 2 * units:]
                st.update(rh=rh)
            hh = A(ph)
            hn, cn = zg * h + (1 - zg) * hh, None
            st.update(pz=pz, pr=pr, ph=ph, zg=zg, rg=rg, hh=hh)
        if mask is not None:
            m = mask[:, t][:, None]
            hn = np.where(m, hn, h)
            if cn is not None:
                cn = np.where(m, cn, c)
        h, c = hn, cn
        outs[:, t] = h
        cache["steps"].append(st)
    cache["h"], cache["c"] = h, c
    return outs, cache


def backward(cache, dys=None, dh_last=None, dc_last=None):
    """Gradients of ``sum(outputs * dys) + sum(h_final * dh_last) + sum(c_final * dc_last)``.

    Returns a dict with dx, dw, dr, db, drb (GRU reset_after with bias), dh0, dc0.
    """
    cell, x, w, r = cache["cell"], cache["x"], cache["w"], cache["r"]
    mask, rmask = cache["mask"], cache["rmask"]
    act, rec_act, a, ra = cache["act"], cache["rec_act"], cache["a"], cache["ra"]
    n, steps, _ = x.shape
    units = r.shape[0]
    dx = np.zeros_like(x)
    dw, dr = np.zeros_like(w), np.zeros_like(r)
    db = np.zeros(w.shape[1], dtype=x.dtype)
    drb = np.zeros(w.shape[1], dtype=x.dtype)
    dh = np.zeros((n, units), dtype=x.dtype) if dh_last is None else dh_last.astype(x.dtype).copy()
    dc = np.zeros((n, units), dtype=x.dtype) if dc_last is None else dc_last.astype(x.dtype).copy()
    AG = lambda z, g: activation_grad(act, z, g, a)  # noqa: E731
    RG = lambda z, g: activation_grad(rec_act, z, g, ra)  # noqa: E731
    for t in reversed(range(steps)):
        st = cache["steps"][t]
        if dys is not None:
            dh = dh + dys[:, t]
        hd, hds, h_prev = st["hd"], st["hds"], st["h_prev"]
        ng = N_GATES[cell]
        gm = (lambda k: rmask[k]) if rmask is not None else (lambda k: 1)  # noqa: E731
        direct = np.zeros_like(dh)
        if cell == SIMPLE_RNN:
            dz = AG(st["z"], dh)
            dzx = dzr = dz
            dc_prev = None
        elif cell == LSTM:
            zi, zf, zc, zo = np.split(st["z"], 4, axis=1)
            tc = activation(act, st["c"], a)
            dct = dc + AG(st["c"], dh * st["o"])
            dz = np.concatenate([RG(zi, dct * st["g"]), RG(zf, dct * st["c_prev"]),
                                 AG(zc, dct * st["i"]), RG(zo, dh * tc)], axis=1)
            dzx = dzr = dz
            dc_prev = dct * st["f"]
        else:
            zg, rg, hh = st["zg"], st["rg"], st["hh"]
            dhh_pre = AG(st["ph"], dh * (1 - zg))
            dz_pre = RG(st["pz"], dh * (h_prev - hh))
            direct = dh * zg
            dc_prev = None
            if cache["reset_after"]:
                dr_pre = RG(st["pr"], dhh_pre * st["rz_h"])
                dzx = np.concatenate([dz_pre, dr_pre, dhh_pre], axis=1)
                dzr = np.concatenate([dz_pre, dr_pre, dhh_pre * rg], axis=1)
            else:
                drh = dhh_pre @ r[:, 2 * units:].T
                dr_pre = RG(st["pr"], drh * hd)
                dzx = np.concatenate([dz_pre, dr_pre, dhh_pre], axis=1)
                dzr = None
        if mask is not None:
            m = mask[:, t][:, None]
            dzx = np.where(m, dzx, 0)
            if dzr is not None:
                dzr = np.where(m, dzr, 0)
            direct = np.where(m, direct, dh)
        dw += x[:, t].T @ dzx
        db += dzx.sum(axis=0)
        dx[:, t] = dzx @ w.T
        U_ = slice
        if cell == GRU and not cache["reset_after"]:
            dhd = 0
            for k in range(2):
                cols = U_(k * units, (k + 1) * units)
                dr[:, cols] += hds[k].T @ dzx[:, cols]
                dhd = dhd + (dzx[:, cols] @ r[:, cols].T) * gm(k)
            dr[:, 2 * units:] += st["rh"].T @ dzx[:, 2 * units:]
            dhd = dhd + (dzx[:, 2 * units:] @ r[:, 2 * units:].T) * rg * gm(2)
        else:
            dhd = 0
            for k in range(ng):
                cols = U_(k * units, (k + 1) * units)
                dr[:, cols] += hds[k].T @ dzr[:, cols]
                dhd = dhd + (dzr[:, cols] @ r[:, cols].T) * gm(k)
            drb += dzr.sum(axis=0)
        dh = direct + dhd
        if dc_prev is not None:
            dc = np.where(mask[:, t][:, None], dc_prev, dc) if mask is not None else dc_prev
    out = dict(dx=dx, dw=dw, dr=dr, db=db if cache["b"] is not None else None,
               drb=drb if (cache["rb"] is not None) else None, dh0=dh,
               dc0=dc if cell == LSTM else None)
    return out


def embedding_forward(indices, table):
    idx = np.asarray(indices)
    if idx.size and (idx.min() < 0 or idx.max() >= table.shape[0]):
        raise IndexError("index out of range")
    return table[idx]


def embedding_backward(indices, dy, input_dim):
    dtable = np.zeros((input_dim, dy.shape[-1]), dtype=dy.dtype)
    np.add.at(dtable, np.asarray(indices).reshape(-1), dy.reshape(-1, dy.shape[-1]))
    return dtable
